"""The reference docs are generated from the code and must not be stale; the README and
docs/commands.md list every chat command and every `rpbot` subcommand."""

from __future__ import annotations

import argparse

from adapter.cli import build_parser
from adapter.docgen import render_commands, render_configuration
from adapter.matrix.handlers.registry import REGISTRY
from tests.support.bot_process import REPO_ROOT

REGENERATE = "regenerate with `python -m adapter.docgen{} > docs/{}.md`"


def subcommands() -> list[str]:
    parser = build_parser()
    return list(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def test_configuration_reference_is_up_to_date():
    committed = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_configuration(), REGENERATE.format("", "configuration")


def test_commands_reference_is_up_to_date():
    committed = (REPO_ROOT / "docs" / "commands.md").read_text()
    assert committed == render_commands(), REGENERATE.format(" commands", "commands")


def test_every_config_key_has_a_description():
    from adapter.config import Config

    for section_name, section in Config.model_fields.items():
        assert section.description, section_name
        for key, field in section.annotation.model_fields.items():
            assert field.description, f"{section_name}.{key} has no Field(description=...)"


def test_readme_lists_every_chat_command_and_subcommand():
    readme = (REPO_ROOT / "README.md").read_text()
    for command in REGISTRY.values():
        assert f"`{command.usage}`" in readme, command.usage
    commands_doc = (REPO_ROOT / "docs" / "commands.md").read_text()
    for name in subcommands():
        assert f"### rpbot {name}" in commands_doc


def test_docs_and_deploy_files_the_readme_links_exist():
    readme = (REPO_ROOT / "README.md").read_text()
    for path in ("docs/configuration.md", "docs/commands.md", "docs/architecture.md", "deploy/rpbot.service", "deploy/Containerfile"):
        assert f"]({path})" in readme, path
        assert (REPO_ROOT / path).is_file(), path


def test_deploy_recipes_run_the_bot_as_documented():
    unit = (REPO_ROOT / "deploy" / "rpbot.service").read_text()
    for line in ("User=rpbot", "WorkingDirectory=", "EnvironmentFile=", "Restart=on-failure", "run --config"):
        assert line in unit, line
    container = (REPO_ROOT / "deploy" / "Containerfile").read_text()
    for line in ("FROM python:3.11-slim", "pip install .", "USER rpbot", 'VOLUME ["/data"]', '"run", "--config", "/config/rpbot.toml"'):
        assert line in container, line
