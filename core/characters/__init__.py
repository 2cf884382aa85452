"""Characters: Character Card V2/V3 import (JSON or PNG) and the built-in cast."""
