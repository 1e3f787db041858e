/**
 * Tampering with an encrypted backup on its server, as its operator could: a bit flipped in a
 * stored record (its checksums recomputed, so only authentication can tell), a record moved
 * within its log, one copied into another log at the same offset, one of another encrypted
 * backup at the same place: each is caught by the node's restore with one line, exit 1, and
 * nothing left at the target. One replayed at the end of the live log is refused by the
 * server itself (its version goes back), with one line too. The untouched backup then
 * restores again.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { PASSPHRASE } from "./support/encrypted.ts";
import { cli, initEncrypted, startEncryptedServer } from "./support/encrypted_server.ts";
import { CREDENTIAL_ENV } from "../lib/backends/socket/credential.ts";
import { readChain } from "../lib/format/chain.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE, RecordKind } from "../lib/format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { crc32 } from "node:zlib";
import { makeEncryptedBackup } from "./support/encrypted.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { logName } from "../lib/format/layout.ts";

/** The records of a log file: offset and length, in order, up to the zeros after them. */
function records(bytes: Uint8Array): { offset: number; length: number; kind: number }[] {
  const out = [];
  for (let at = SEGMENT_HEADER_SIZE; at < bytes.length;) {
    const header = decodeRecordHeader(bytes.subarray(at));
    if (!header) break;
    const length = RECORD_HEADER_SIZE + header.storedLength;
    out.push({ offset: at, length, kind: header.kind });
    at += length;
  }
  return out;
}

/** Flips a bit of a record's sealed payload and recomputes both of its checksums. */
function flipWithChecksums(bytes: Uint8Array, record: { offset: number; length: number }) {
  const out = bytes.slice();
  const payload = record.offset + RECORD_HEADER_SIZE;
  out[payload + 30] ^= 0x04;
  const view = new DataView(out.buffer);
  view.setUint32(record.offset + 24, crc32(out.subarray(payload, record.offset + record.length)));
  view.setUint32(record.offset, crc32(out.subarray(record.offset + 4, payload)));
  return out;
}

Deno.test("encrypted server backup: a flipped, moved, replayed or copied record fails the restore in one line, nothing restored", async () => {
  const s = await startEncryptedServer();
  try {
    await initEncrypted(s);
    const node = FakeLightningd.spawn({
      lightningDir: s.dir,
      env: { CLN_BACKUP_TEST_SEGMENT_BYTES: String(4 * 1024) },
    });
    assertEquals(await node.replay(loadFixture("fresh-start").raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    const logs = readChain(s.storage).logs.map((l) => l.path);
    assert(logs.length >= 3, `the logs rolled: ${logs.length}`);
    const original = new Map(logs.map((path) => [path, Deno.readFileSync(path)]));
    const changes = (path: string) =>
      records(original.get(path)!).filter((r) => r.kind === RecordKind.Change);
    // A log with three changes at least, and another whose first record is a change.
    const first = logs.find((path) => changes(path).length >= 3)!;
    const second = logs.find((path) =>
      path !== first && changes(path)[0]?.offset === SEGMENT_HEADER_SIZE
    )!;
    assert(first && second, "logs to tamper with");

    const env = { [CREDENTIAL_ENV]: s.credential.path, CLN_BACKUP_PASSPHRASE: PASSPHRASE };
    let round = 0;
    const refused = async (what: string, pattern: RegExp) => {
      const target = `${s.root}/tampered-${round++}.sqlite3`;
      const out = await cli(["restore", s.url, target], env);
      assertEquals(out.code, 1, `${what}: ${out.stdout}`);
      assertEquals(out.stderr.trim().split("\n").length, 1, `${what}: ${out.stderr}`);
      assertMatch(out.stderr, pattern, `${what}: ${out.stderr}`);
      assert(!Deno.readDirSync(s.root).some((e) => e.name.startsWith("tampered")), what);
      for (const [path, bytes] of original) Deno.writeFileSync(path, bytes);
    };
    const auth =
      /^Cannot read backup: a record that fails authentication .* at offset \d+ of "socket:\S+ log-/;

    // A bit flipped in a stored change, its checksums made to fit.
    const victim = changes(first)[1];
    Deno.writeFileSync(first, flipWithChecksums(original.get(first)!, victim));
    await refused("a flipped bit", auth);

    // The same flip with the checksums left alone: damage, named as such.
    const flipped = original.get(first)!.slice();
    flipped[victim.offset + RECORD_HEADER_SIZE + 30] ^= 0x04;
    Deno.writeFileSync(first, flipped);
    await refused("a flipped bit, checksums as they were", /checksum mismatch/);

    // Two changes swapped within their log: each now sits at the other's offset.
    const [a, b] = changes(first).slice(1, 3);
    const bytes = original.get(first)!;
    const swapped = bytes.slice();
    swapped.set(bytes.subarray(b.offset, b.offset + b.length), a.offset);
    swapped.set(bytes.subarray(a.offset, a.offset + a.length), a.offset + b.length);
    Deno.writeFileSync(first, swapped);
    await refused("two records swapped", auth);

    // A change copied from one log into another, at the same offset and of the same length.
    const from = changes(first)[0];
    const into = changes(second).find((r) => r.offset === from.offset);
    assert(into, "the second log has a change at the first one's offset");
    const copied = original.get(second)!.slice();
    const source = original.get(first)!.subarray(from.offset, from.offset + from.length);
    copied.set(source, into.offset);
    // Whatever followed is cut so the copied record ends the log exactly where it ends now.
    Deno.writeFileSync(second, copied.subarray(0, into.offset + from.length));
    await refused("a record copied from another log", auth);

    // A change of another encrypted backup, at the same offset of a log with the same number.
    const other = `${s.root}/other-backup`;
    const otherKey = await makeEncryptedBackup(other);
    const writer = FileBackend.open(`file://${other}`, other, { key: otherKey });
    await writer.append({ version: 1, statements: ["CREATE TABLE elsewhere (a)"] });
    writer.close();
    const foreign = records(Deno.readFileSync(`${other}/${logName(1)}`))[0];
    const firstLog = readChain(s.storage).logs[0];
    const own = records(original.get(firstLog.path)!)[0];
    assertEquals([foreign.offset, own.offset], [SEGMENT_HEADER_SIZE, SEGMENT_HEADER_SIZE]);
    const mixed = original.get(firstLog.path)!.slice(0, SEGMENT_HEADER_SIZE + foreign.length);
    mixed.set(
      Deno.readFileSync(`${other}/${logName(1)}`).subarray(
        foreign.offset,
        foreign.offset + foreign.length,
      ),
      SEGMENT_HEADER_SIZE,
    );
    Deno.writeFileSync(firstLog.path, mixed);
    await refused("a record of another backup", auth);

    // An old change replayed after the live log's last record. A running server sends the
    // live log to where its own appends reached; one that opens the log again refuses it
    // (its version goes back), before any client could be fooled. Last, as the server then
    // opens the backup again.
    const live = logs.at(-1)!;
    const last = records(original.get(live)!).at(-1)!;
    const replayed = new Uint8Array(last.offset + last.length + a.length);
    replayed.set(original.get(live)!.subarray(0, last.offset + last.length));
    replayed.set(bytes.subarray(a.offset, a.offset + a.length), last.offset + last.length);
    Deno.writeFileSync(live, replayed);
    await s.restartServer({});
    await refused(
      "a replayed record",
      /^Cannot restore backup: the server refused node alice: the server cannot open node alice's backup/,
    );

    // Untouched again, it restores.
    const ok = await cli(["restore", s.url, `${s.root}/after.sqlite3`], env);
    assertEquals(ok.code, 0, ok.stderr);
  } finally {
    await s.stop();
  }
});
