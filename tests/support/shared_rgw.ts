/**
 * The one RGW of a test run against a real S3 server (rgw.ts): test files run as workers of
 * one process, and the first to load this module starts the gateway while the others wait
 * for it, so a run starts one instead of one per file (each start costs about 6 s of CPU).
 * It stops when the process ends (scripts/rgw.sh watches it). Where Ceph is not installed, or
 * its gateway cannot start, every test of a file is skipped and the reason printed; with
 * `CLN_BACKUP_REQUIRE_RGW=1` (`.ci/run`) the file fails instead, so CI never passes without
 * them. A test that kills its gateway takes one of its own ({@linkcode withOwnRgw}).
 *
 * @module
 */
import { Rgw, rgwMissing } from "./rgw.ts";

/**
 * Where the run's gateway lives: named by this process, its PID and when it started, with
 * dots, which a scratch directory's name never holds: the CLI commands the tests run sweep
 * the temporary directory for those of killed processes (lib/fs/scratch_dir.ts), and one
 * that cannot read /proc would take this one for such.
 */
const RUN_DIR = (() => {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  return `${Deno.env.get("TMPDIR") ?? "/tmp"}/cln-backup-rgw.${Deno.pid}.${started}`;
})();
const GATEWAY_FILE = `${RUN_DIR}/gateway.json`;
/** How long a file waits for the gateway another file is starting (a loaded machine is slow). */
const WAIT_MS = 300_000;

/**
 * The run's gateway: started here if no other file started it, else the one another file
 * started (and if that start failed, which removes its directory, started here again).
 */
async function runGateway(): Promise<Rgw> {
  for (const deadline = Date.now() + WAIT_MS; Date.now() < deadline;) {
    try {
      Deno.mkdirSync(RUN_DIR, { mode: 0o700 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const found = await startedElsewhere(deadline);
      if (found) return found;
      continue;
    }
    const rgw = await Rgw.start(RUN_DIR);
    Deno.writeTextFileSync(`${GATEWAY_FILE}.tmp`, JSON.stringify(rgw));
    Deno.renameSync(`${GATEWAY_FILE}.tmp`, GATEWAY_FILE);
    return rgw;
  }
  throw new Error(`the gateway another test file started in "${RUN_DIR}" never answered`);
}

/** The gateway in RUN_DIR once it is up, or `undefined` once its start failed. */
async function startedElsewhere(deadline: number): Promise<Rgw | undefined> {
  while (Date.now() < deadline) {
    try {
      return Rgw.attach(RUN_DIR, Deno.readTextFileSync(GATEWAY_FILE));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    try {
      Deno.statSync(RUN_DIR);
    } catch {
      return undefined;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

let shared: Rgw | undefined;

async function startShared(): Promise<string | undefined> {
  try {
    shared = await runGateway();
    return undefined;
  } catch (error) {
    return `Cannot start Ceph RGW here: ${(error as Error).message.trim()}\n` +
      "Skipping the tests against a real S3 server";
  }
}

/** Why this file's tests against RGW skip, or `undefined` when its gateway runs. */
const rgwUnavailable: string | undefined = rgwMissing ?? await startShared();
if (rgwUnavailable && Deno.env.get("CLN_BACKUP_REQUIRE_RGW") === "1") {
  throw new Error(`${rgwUnavailable.split("\n")[0]} (CLN_BACKUP_REQUIRE_RGW=1)`);
}
if (rgwUnavailable) console.warn(rgwUnavailable);

/**
 * The run's RGW. With `exportKeys`, the CLI commands the tests run in this process find its
 * keys in the environment (every test gateway has the same keys: see rgw.ts).
 */
export function sharedRgw(options: { exportKeys?: boolean } = {}): Rgw {
  if (!shared) throw new Error("sharedRgw() outside rgwTest: no gateway runs");
  if (options.exportKeys) {
    Deno.env.set("AWS_ACCESS_KEY_ID", shared.credentials.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", shared.credentials.secretAccessKey);
  }
  return shared;
}

/**
 * Runs `fn` on a gateway of its own, stopped after it: for a test that kills its gateway,
 * which would fail the tests of other files using the run's.
 */
export async function withOwnRgw(fn: (rgw: Rgw) => Promise<void>): Promise<void> {
  const rgw = await Rgw.start();
  try {
    await fn(rgw);
  } finally {
    await rgw.stop();
  }
}

/** A test against RGW, skipped where it cannot run (see the module). */
export function rgwTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: rgwUnavailable !== undefined, fn });
}

/**
 * The `test` of a file whose tests each take the shared RGW and a temporary directory
 * (named `prefix`...), removed after the test.
 */
export function rgwTestInDir(
  prefix: string,
  options: { exportKeys?: boolean } = {},
): (name: string, fn: (s: Rgw, dir: string) => Promise<void>) => void {
  return (name, fn) =>
    rgwTest(name, async () => {
      const dir = Deno.makeTempDirSync({ prefix });
      try {
        await fn(sharedRgw(options), dir);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    });
}
