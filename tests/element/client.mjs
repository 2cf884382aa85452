// An Element-like player client for the tests: matrix-js-sdk with its Rust crypto, as Element Web runs it.
//
// It signs in with an existing access token and device, sets up cross-signing for its account
// (as Element does at first sign-in), and uses the device isolation mode Element uses by
// default ("exclude insecure devices": only devices signed by their owner get room keys,
// and only their messages decrypt), or, with --all-devices, the old mode.
// The Python side (tests/support/element_js.py) talks to it by JSON lines: commands on
// stdin ({"id", "cmd": "send", "room_id", "body"}; "devices" with "user_id" (and "download": false for only the
// device list the crypto tracks, from the rooms it shares with that user); "verified" with "user_id"
// and "device_id"; "join" with "room_id"; "rooms": the rooms and their membership, highlight count
// and Element's room settings), and on stdout every message it sees (encrypted or not), with its
// decryption result and shield, and its sender as Element shows it (the sender's room member at
// that event: `event.sender`, its name and avatar), plus one answer per command.
import "./node20.mjs"; // must run before matrix-js-sdk is loaded
import * as readline from "node:readline";
import * as sdk from "matrix-js-sdk";
import { AllDevicesIsolationMode, EventShieldColour, EventShieldReason, OnlySignedDevicesIsolationMode } from "matrix-js-sdk/lib/crypto-api/index.js";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/recovery-key.js";

const [homeserver, userId, deviceId, accessToken, password, mode] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const toStderr = (level) => (...args) => process.stderr.write(`${level} ${args.join(" ")}\n`);
const quiet = { debug() {}, info() {}, log() {}, trace() {}, warn: toStderr("WARN"), error: toStderr("ERROR"), getChild: () => quiet };

// With --recovery-key=KEY the client is the operator opening the account with its recovery key,
// as Element's "verify with recovery key" does: the cross-signing keys come from secret storage.
const recoveryKey = mode?.startsWith("--recovery-key=") ? mode.slice("--recovery-key=".length) : null;
const cryptoCallbacks = {
  getSecretStorageKey: async ({ keys }) => [Object.keys(keys)[0], decodeRecoveryKey(recoveryKey)],
};
const client = sdk.createClient({ baseUrl: homeserver, userId, deviceId, accessToken, logger: quiet, cryptoCallbacks });
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
if (!recoveryKey) {
  await crypto.bootstrapCrossSigning({
    authUploadDeviceSigningKeys: async (makeRequest) => {
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password });
    },
  });
}
crypto.setDeviceIsolationMode(mode === "--all-devices" ? new AllDevicesIsolationMode(false) : new OnlySignedDevicesIsolationMode());

const reported = new Set();
async function report(event) {
  if (event.isBeingDecrypted()) return;
  if (event.isEncrypted() && event.getType() === "m.room.encrypted" && !event.isDecryptionFailure()) return; // not tried yet
  if (!event.isEncrypted() && event.getType() !== "m.room.message") return;
  const key = `${event.getId()}:${event.isDecryptionFailure()}`;
  if (reported.has(key)) return;
  reported.add(key);
  const info = event.isEncrypted() && !event.isDecryptionFailure() ? await crypto.getEncryptionInfoForEvent(event) : null;
  const content = event.isDecryptionFailure() ? null : event.getOriginalContent();
  out({
    kind: "message",
    room_id: event.getRoomId(),
    event_id: event.getId(),
    sender: event.getSender(),
    type: event.getType(),
    body: content?.body ?? null,
    failure: event.isDecryptionFailure() ? String(event.decryptionFailureReason) : null,
    sender_device: event.getWireContent().device_id ?? null,
    shield: info ? EventShieldColour[info.shieldColour] : null,
    shield_reason: info?.shieldReason == null ? null : EventShieldReason[info.shieldReason],
    encrypted: event.isEncrypted(),
    sender_name: event.sender?.name ?? null, // the sender's room member when the event was sent, as Element names it
    sender_avatar: event.sender?.getMxcAvatarUrl() ?? null,
    msgtype: content?.msgtype ?? null,
    edits: content?.["m.relates_to"]?.rel_type === "m.replace" ? content["m.relates_to"].event_id : null,
    profile: content?.["com.beeper.per_message_profile"] ?? null,
    mentions: content?.["m.mentions"] ?? null,
  });
}
client.on(sdk.MatrixEventEvent.Decrypted, (event) => report(event));
client.on(sdk.RoomEvent.Timeline, (event) => report(event));

client.on(sdk.ClientEvent.Sync, (state, _, data) => { if (data?.error) process.stderr.write(`sync ${state}: ${data.error}\n`); });
await client.startClient({ initialSyncLimit: 20 });
await new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
if (recoveryKey) {
  await crypto.userHasCrossSigningKeys(userId, true); // the account's public keys first, as after Element's first sync
  await crypto.bootstrapCrossSigning({});
}
out({ kind: "ready", device_id: deviceId, cross_signing_ready: await crypto.isCrossSigningReady() });

for await (const line of readline.createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  try {
    if (command.cmd === "send") {
      const { event_id } = await client.sendMessage(command.room_id, { msgtype: "m.text", body: command.body });
      out({ kind: "result", id: command.id, event_id });
    } else if (command.cmd === "devices") {
      const devices = await crypto.getUserDeviceInfo([command.user_id], command.download !== false);
      out({ kind: "result", id: command.id, devices: [...(devices.get(command.user_id)?.keys() ?? [])] });
    } else if (command.cmd === "verified") {
      const status = await crypto.getDeviceVerificationStatus(command.user_id, command.device_id);
      out({ kind: "result", id: command.id, verified: Boolean(status?.isVerified()), cross_signing_verified: Boolean(status?.crossSigningVerified) });
    } else if (command.cmd === "join") {
      await client.joinRoom(command.room_id);
      out({ kind: "result", id: command.id });
    } else if (command.cmd === "rooms") {
      const rooms = client.getRooms().map((room) => ({
        room_id: room.roomId,
        membership: room.getMyMembership(),
        highlights: room.getUnreadNotificationCount("highlight"),
        settings: room.currentState.getStateEvents("im.vector.web.settings", "")?.getContent() ?? null,
      }));
      out({ kind: "result", id: command.id, rooms });
    } else if (command.cmd === "stop") {
      client.stopClient();
      out({ kind: "result", id: command.id });
      break;
    }
  } catch (error) {
    out({ kind: "result", id: command.id, error: `${error.name}: ${error.message}` });
  }
}
process.exit(0);
