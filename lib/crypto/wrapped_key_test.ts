import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/support/assert.ts";
import { DataKey } from "./data_key.ts";
import { describeWraps, unwrapKey, wrapKey } from "./wrapped_key.ts";
import { ageRecipientOf, newAgeIdentity } from "./primitives.ts";

/** A cheap scrypt for tests; the cost is stored in the wrap, so unwrapping follows it. */
const CHEAP = { logN: 10, r: 8, p: 1 };
const backupId = new Uint8Array(16).fill(5);

Deno.test("wrapped key: a passphrase and an age identity each open it; others do not", async () => {
  const key = await DataKey.generate();
  const identity = await newAgeIdentity();
  const recipient = await ageRecipientOf(identity);
  const file = await wrapKey(key, backupId, {
    passphrase: "correct horse",
    recipients: [recipient],
  }, CHEAP);
  assertEquals(describeWraps(file), ["passphrase", `age recipient ${recipient}`]);
  const open = (secrets: Parameters<typeof unwrapKey>[4]) =>
    unwrapKey(file, "key.json", backupId, key.id, secrets);
  assertEquals((await open([{ passphrase: "correct horse" }])).bytes, key.bytes);
  assertEquals((await open([{ identity }])).bytes, key.bytes);
  // NFC and NFD spellings of a passphrase are the same passphrase.
  const accented = await wrapKey(key, backupId, { passphrase: "caf\u00e9" }, CHEAP);
  assertEquals(
    (await unwrapKey(accented, "k", backupId, key.id, [{ passphrase: "cafe\u0301" }])).bytes,
    key.bytes,
  );
  await assertRejects(
    () => open([{ passphrase: "wrong horse" }]),
    /^Cannot unlock backup: the passphrase given does not open the backup's key \(wrapped for: passphrase, age recipient age1.*\): a wrong passphrase or identity\?$/,
  );
  await assertRejects(
    async () => open([{ identity: await newAgeIdentity() }]),
    /the identity given does not open/,
  );
  await assertRejects(
    () => open([{ identity: "AGE-SECRET-KEY-1NOPE" }]),
    /not an age X25519 identity/,
  );
  await assertRejects(() => open([]), /no secret given does not open/);
});

Deno.test("wrapped key: it belongs to one backup and one key; damage is named", async () => {
  const key = await DataKey.generate();
  const file = await wrapKey(key, backupId, { passphrase: "p" }, CHEAP);
  const secrets = [{ passphrase: "p" }];
  await assertRejects(
    () => unwrapKey(file, "/b/key.json", new Uint8Array(16), key.id, secrets),
    /"\/b\/key\.json" holds the key of another backup/,
  );
  await assertRejects(
    async () => unwrapKey(file, "k", backupId, (await DataKey.generate()).id, secrets),
    /holds the key of another backup/,
  );
  await assertRejects(
    () => unwrapKey(new TextEncoder().encode("{"), "k", backupId, key.id, secrets),
    /"k" is not JSON/,
  );
  // The sealed key changed: the passphrase no longer opens it.
  const text = new TextDecoder().decode(file);
  const json = JSON.parse(text);
  const sealed = atob(json.wraps[0].sealed);
  json.wraps[0].sealed = btoa(
    sealed.slice(0, 30) + String.fromCharCode(sealed.charCodeAt(30) ^ 1) + sealed.slice(31),
  );
  await assertRejects(
    () => unwrapKey(new TextEncoder().encode(JSON.stringify(json)), "k", backupId, key.id, secrets),
    /does not open the backup's key/,
  );
  await assertRejects(
    () => wrapKey(key, backupId, {}),
    /wrapped for a passphrase or an age recipient/,
  );
  await assertRejects(
    () => wrapKey(key, backupId, { recipients: ["age1nope"] }),
    /not an age X25519 recipient/,
  );
  // An identity in a recipient's place is a secret: the refusal does not repeat it.
  const secret = await newAgeIdentity();
  const error = await assertRejects(
    () => wrapKey(key, backupId, { recipients: [secret] }),
    /an age identity is not an age X25519 recipient/,
  );
  assert(!error.message.includes(secret.slice(15)), error.message);
  assertMatch(new TextDecoder().decode(file), /"key_id": "[0-9a-f]{16}"/);
});

Deno.test("wrapped key: a key.json that would cost more than a wrong secret does is refused in one line", async () => {
  const key = await DataKey.generate();
  const file = JSON.parse(
    new TextDecoder().decode(await wrapKey(key, backupId, { passphrase: "p" }, CHEAP)),
  );
  const opening = (wraps: unknown[]) => () =>
    unwrapKey(
      new TextEncoder().encode(JSON.stringify({ ...file, wraps })),
      "k",
      backupId,
      key.id,
      [{ passphrase: "p" }, { identity: "AGE-SECRET-KEY-1QQQQ" }],
    );
  const wrap = file.wraps[0];
  // scrypt at 2^21 or 2^22 needs 2 or 4 GiB: more than @noble/hashes takes, whose own
  // error ('"maxmem" limit was hit') named neither the file nor what to do.
  for (const logN of [21, 22]) {
    await assertRejects(
      opening([{ ...wrap, log_n: logN }]),
      /^Cannot unlock backup: its passphrase wrap has costs this cln-backup does not take$/,
    );
  }
  // Fields of another type were a TypeError from Buffer, not a refusal naming the file.
  for (
    const bad of [
      { ...wrap, salt: 5 },
      { ...wrap, sealed: null },
      { type: "age", recipient: "age1x", sealed: 7 },
      null,
    ]
  ) {
    await assertRejects(
      opening([bad]),
      /^Cannot unlock backup: "k" holds a wrap whose fields are not a cln-backup wrap's: restore it from a copy of the backup, or upgrade cln-backup$/,
    );
  }
  // Each passphrase wrap costs a scrypt run: a thousand would take an hour to refuse.
  await assertRejects(
    opening(Array.from({ length: 1000 }, () => wrap)),
    /^Cannot unlock backup: "k" holds more than one passphrase wrap, which cln-backup never writes: /,
  );
});
