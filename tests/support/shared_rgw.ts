/**
 * The one RGW of a test file against a real S3 server (rgw.ts), started when the file is
 * loaded, before its tests register: where Ceph is not installed, or its gateway cannot
 * start, every test of the file is skipped and the reason printed once; with
 * `CLN_BACKUP_REQUIRE_RGW=1` (`.ci/run`) the file fails instead, so CI never passes without
 * them. Import this only
 * from files whose tests need RGW (each import starts one), and end the file with
 * {@linkcode stopSharedRgwLast}.
 *
 * @module
 */
import { Rgw, rgwMissing } from "./rgw.ts";

let shared: Promise<Rgw> | undefined;
/** The running gateway, stopped at unload when `stopSharedRgwLast` did not run (`--filter`). */
let running: Rgw | undefined;
globalThis.addEventListener("unload", () => running?.stopSync());

async function startShared(): Promise<string | undefined> {
  shared = Rgw.start();
  try {
    running = await shared;
    return undefined;
  } catch (error) {
    shared = undefined;
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
 * The file's RGW (started again if a test stopped it). With `exportKeys`, the CLI commands
 * the tests run in this process find its keys in the environment.
 */
export async function sharedRgw(options: { exportKeys?: boolean } = {}): Promise<Rgw> {
  shared ??= Rgw.start();
  const rgw = running = await shared;
  if (options.exportKeys) {
    Deno.env.set("AWS_ACCESS_KEY_ID", rgw.credentials.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", rgw.credentials.secretAccessKey);
  }
  return rgw;
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
        await fn(await sharedRgw(options), dir);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    });
}

/** Registers the test file's last test, which stops its shared RGW. */
export function stopSharedRgwLast(): void {
  Deno.test({
    name: "stop the test S3 server",
    ignore: rgwUnavailable !== undefined,
    fn: async () => {
      const rgw = await shared;
      shared = running = undefined;
      await rgw?.stop();
    },
  });
}
