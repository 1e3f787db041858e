import { assertEquals } from "../../tests/support/assert.ts";
import { PASSPHRASE } from "../../tests/support/encrypted.ts";
import { TEST_SCRYPT_LOG_N_ENV, wrapCost } from "./wrap_cost.ts";
import { SCRYPT_COST } from "../crypto/wrapped_key.ts";
import { commandGrants, denoFlags } from "./permissions.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("wrapCost: operators get scrypt 2^17; the test seam takes 2^10 to 2^17 only", () => {
  const cost = (value?: string) =>
    wrapCost({ get: (name) => name === TEST_SCRYPT_LOG_N_ENV ? value : undefined }).logN;
  assertEquals(SCRYPT_COST, { logN: 17, r: 8, p: 1 });
  assertEquals(cost(), 17);
  assertEquals([cost("10"), cost("12"), cost("17")], [10, 12, 17]);
  for (const value of ["", "9", "18", "30", "12.5", "ten", "-1"]) assertEquals(cost(value), 17);
});

/**
 * The scrypt N of the passphrase wrap `init --encrypt` writes, run with `logN` in the seam,
 * with every permission or (`scoped`) those backup-cli grants init.
 */
async function initLogN(logN: string | undefined, scoped = false): Promise<number> {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-wrap-cost-" });
  try {
    Deno.mkdirSync(`${dir}/node`);
    Deno.writeTextFileSync(`${dir}/passphrase`, PASSPHRASE, { mode: 0o600 });
    const env = Deno.env.toObject();
    delete env[TEST_SCRYPT_LOG_N_ENV];
    if (logN !== undefined) env[TEST_SCRYPT_LOG_N_ENV] = logN;
    const args = [
      "init",
      ...["--lightning-dir", `${dir}/node`, "--encrypt", "--passphrase-file"],
      ...[`${dir}/passphrase`, `file://${dir}/backup`],
    ];
    const flags = scoped
      ? denoFlags(commandGrants(args, Deno.env.get("TMPDIR") ?? "/tmp"))
      : ["-A"];
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, CLI, ...args],
      clearEnv: true,
      env,
      stdout: "null",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    const file = JSON.parse(Deno.readTextFileSync(`${dir}/backup/key.json`));
    return file.wraps.find((w: { type: string }) => w.type === "passphrase").log_n;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("init --encrypt wraps at scrypt 2^17 unless the test suite's seam asks less, which a permission-scoped init never reads", async () => {
  assertEquals(await initLogN(undefined), 17);
  assertEquals(await initLogN("10"), 10);
  assertEquals(await initLogN("10", true), 17);
});
