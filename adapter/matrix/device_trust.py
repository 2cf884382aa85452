"""Which of a player's devices the bot shares its room keys with: Element's rule, and one exception.

A player who has cross-signing (every Element user now has) gets the bot's room keys only on
the devices they signed, as Element does: an unsigned device of such a player is a device
they never confirmed, perhaps someone else's login, and is blacklisted in nio's store so it
receives no keys (it sees the bot's messages as undecryptable, as it would an Element user's).
A player with no cross-signing at all (a client that has none) gets keys on all their
devices, logged: excluding them would leave them with a bot that never visibly answers,
and there is no signature to check against. Lines *from* any device are read and answered.

nio re-evaluates a user's devices when their device list changes (`users_for_key_query`);
`refresh` runs then, reading the cross-signing keys from the homeserver's `/keys/query`.
Blacklisting and unblacklisting in nio rotate the room's outbound session, so a device
signed later gets keys from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx
from nio import AsyncClient

from adapter.matrix.signatures import cross_signed_devices

log = logging.getLogger(__name__)


async def refresh_device_trust(client: AsyncClient, http: httpx.AsyncClient, users: Iterable[str]) -> bool:
    """Blacklist the unsigned devices of cross-signed `users`; unblacklist their signed ones.

    False when the homeserver could not be asked: the caller keeps the users for the next round.
    """
    users = sorted(set(users) - {client.user_id})
    if not users or not client.olm:
        return True
    try:
        response = await http.post("/_matrix/client/v3/keys/query", json={"device_keys": {user: [] for user in users}})
    except httpx.HTTPError as exc:
        log.warning("could not read cross-signing keys of %d users (%s); trying again later", len(users), exc)
        return False
    if response.status_code != 200:
        log.warning("could not read cross-signing keys of %d users (%s); trying again later", len(users), response.status_code)
        return False
    query = response.json()
    for user in users:
        signed = cross_signed_devices(query, user)
        if signed is None:
            log.info("%s has no cross-signing: sharing room keys with all their devices", user)
        for device in client.device_store.active_user_devices(user):
            if signed is None or device.id in signed:
                client.unblacklist_device(device)
            elif client.blacklist_device(device):
                log.warning("not sharing room keys with %s's device %s: its owner has not signed it", user, device.id)
    return True
