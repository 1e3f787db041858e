/**
 * Compaction is crash-safe: a process appending the recorded changes while a worker
 * compacts is killed at every step of a compaction (first base part written, base durable,
 * first delete done, the live log's trimmed copy durable), at a roll during the compaction,
 * or at a random moment; some trials then also lose what was never synced (a power cut).
 * Some trials are an idle node's: no append until the compaction is done. Each time the writer reopens the
 * backup, which must then hold exactly the acknowledged changes and restore to the node's
 * state; the rest of the changes are appended and the final restore must equal the node.
 *
 * `COMPACT_CRASH_SEEDS=3,17` replays trials; `COMPACT_CRASH_TRIALS` (default 120) sets the count.
 */
import { restoredDump } from "./support/restored.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { dumpAt } from "./support/node_at.ts";
import { SCENARIOS } from "./support/fixtures.ts";
import { prng } from "./support/prng.ts";
import { recordedChanges } from "./support/cli_testing.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { readLayout } from "../lib/format/layout.ts";
import { compactBackup } from "../lib/compact/compact.ts";
import { SEAM_ENV, SEAM_STEPS, type SeamStep } from "../lib/fs/step_seam.ts";

const CHILD = new URL("./support/compact_child.ts", import.meta.url).pathname;
const CHANGES = recordedChanges(SCENARIOS);
const LAST = CHANGES.at(-1)!.version;
const SEGMENT_BYTES = 16 * 1024;
/** The steps of a roll and a compaction the crash seam (lib/fs/step_seam.ts) kills at. */
const STEPS = SEAM_STEPS.filter((step) => step === "roll" || step.startsWith("compact-"));
const KINDS = [...STEPS, "sigkill-random", "none"] as const;
type Kind = typeof KINDS[number];

interface Trial {
  seed: number;
  kind: Kind;
  landed: boolean;
  powerCut: boolean;
  repairs: string[];
}

const truths = new Map<number, string>();
function truth(version: number): string {
  let dump = truths.get(version);
  if (dump === undefined) truths.set(version, dump = dumpAt(CHANGES, version));
  return dump;
}

/** Cuts what the killed process had not synced: a partial base, at a random length. */
function powerCut(path: string, random: () => number): boolean {
  const partial = readLayout(path).temporaries.find((p) => p.endsWith(".clnb.tmp"));
  if (!partial) return false;
  const size = Deno.statSync(partial).size;
  Deno.truncateSync(partial, Math.floor(random() * size));
  return true;
}

async function trial(seed: number): Promise<Trial> {
  const random = prng(seed);
  const kind = KINDS[seed % KINDS.length];
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compact-crash-" });
  const path = `${dir}/backup`;
  const url = `file://${path}`;
  try {
    // The backup before the child: built quickly, synced once.
    const start = 100 + Math.floor(random() * 250);
    createFileBackup(path);
    const builder = FileBackend.open(url, path, { segmentBytes: SEGMENT_BYTES, syncOnClose: true });
    for (const change of CHANGES.slice(0, start)) await builder.append(change);
    builder.close();
    if (random() < 0.3) compactBackup(url, path, { target: CHANGES[start - 2].version });

    const to = Math.min(CHANGES.length, start + 40 + Math.floor(random() * 80));
    // After at least one more change, so there is something new to fold.
    const compactAt = start + 1 + Math.floor(random() * 10);
    // An idle node (no append until the compaction is done) has its live log trimmed.
    const idle = kind === "compact-trim" || random() < 0.3;
    const env: Record<string, string> = {};
    if (kind === "roll") env[SEAM_ENV] = `crash@roll:${1 + Math.floor(random() * 2)}`;
    else if (kind !== "sigkill-random" && kind !== "none") {
      env[SEAM_ENV] = `crash@${kind satisfies SeamStep}`;
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CHILD,
        path,
        String(start),
        String(to),
        String(compactAt),
        String(SEGMENT_BYTES),
        ...(idle ? ["idle"] : []),
      ],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (kind === "sigkill-random") {
      setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // It finished first.
        }
      }, 60 + random() * 240);
    }
    const output = await child.output();
    const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
    const acked = lines.filter((l) => l.startsWith("acked ")).map((l) => Number(l.slice(6)));
    const landed = !output.success;
    if (kind === "none") assert(output.success, new TextDecoder().decode(output.stderr));
    const lastAcked = acked.at(-1) ?? CHANGES[start - 1].version;
    const cut = landed && random() < 0.5 && powerCut(path, random);

    // Reopen as the plugin would; a change stored but never acknowledged is dropped.
    const repairs: string[] = [];
    const writer = FileBackend.open(url, path, {
      segmentBytes: SEGMENT_BYTES,
      log: (m) => repairs.push(m),
    });
    try {
      // The version check's decision, with the node at its last acknowledged change: a
      // change stored but never acknowledged is dropped, a torn append is cut.
      if (writer.state().version === lastAcked + 1) await writer.rewind();
      if (writer.state().tail) repairs.push(await writer.cutTail());
      assertEquals(writer.state().version, lastAcked, `seed ${seed}: backup version after reopen`);
      assertEquals(restoredDump(url, dir), truth(lastAcked), `seed ${seed}: at ${lastAcked}`);
      const next = CHANGES.findIndex((c) => c.version > lastAcked);
      for (const change of CHANGES.slice(next)) await writer.append(change);
      if (random() < 0.5) {
        compactBackup(url, path, { target: writer.compactionTarget()! });
        writer.compacted();
      }
    } finally {
      writer.close();
    }
    assertEquals(restoredDump(url, dir), truth(LAST), `seed ${seed}: final restore`);
    console.log(
      `seed ${seed}: ${kind}${landed || kind === "none" ? "" : " (finished first)"}, ` +
        `acked ${lastAcked}` +
        `${cut ? ", power cut" : ""}${repairs.length > 0 ? `, ${repairs.length} repaired` : ""}`,
    );
    return { seed, kind, landed, powerCut: cut, repairs };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("compaction crash safety: kill at every step, reopen, restore equals the node", async () => {
  const chosen = Deno.env.get("COMPACT_CRASH_SEEDS");
  const count = Number(Deno.env.get("COMPACT_CRASH_TRIALS") ?? 120);
  const seeds = chosen
    ? chosen.split(",").map(Number)
    : Array.from({ length: count }, (_, i) => i + 1);
  const trials: Trial[] = [];
  const queue = [...seeds];
  const failures: string[] = [];
  await Promise.all(Array.from({ length: 2 }, async () => {
    while (queue.length > 0) {
      const seed = queue.shift()!;
      try {
        trials.push(await trial(seed));
      } catch (error) {
        failures.push(`seed ${seed}: ${(error as Error).message.split("\n")[0]}`);
      }
    }
  }));
  const landed = (kind: Kind) => trials.filter((t) => t.kind === kind && t.landed).length;
  console.log(
    `${trials.length + failures.length} trials, ${failures.length} failed; crashes landed: ` +
      KINDS.filter((k) => k !== "none").map((k) => `${k} ${landed(k)}`).join(", ") +
      `; ${trials.filter((t) => t.powerCut).length} power cuts; ` +
      `${trials.filter((t) => t.repairs.length > 0).length} reopens repaired something`,
  );
  assertEquals(failures, []);
  // Most planned crashes land (a step is missed only when the compaction did not need it).
  const planned = Math.floor(seeds.length / KINDS.length);
  for (const kind of STEPS) {
    assert(
      landed(kind) >= planned / 2,
      `only ${landed(kind)} of ${planned} ${kind} crashes landed`,
    );
  }
});
