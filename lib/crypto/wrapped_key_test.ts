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
