/**
 * Advice run as the operator pastes it into a shell: each command a message names between
 * double quotes, run with `sh -c` and a `cln-backup` on PATH that runs cli.ts.
 *
 * @module
 */
import { assert } from "./assert.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The last command `message` advises to run, as printed between its double quotes. */
export function advised(message: string): string {
  const commands = [...message.matchAll(/"(cln-backup [^"]*)"/g)].map((m) => m[1]);
  assert(commands.length > 0, message);
  return commands.at(-1)!;
}

/**
 * Runs `command` as the operator pastes it into a shell: `sh -c`, with a `cln-backup` on PATH
 * that runs cli.ts. Not the suite's INIT_CWD: it would name advice `deno task`.
 */
export async function runAsPrinted(
  command: string,
  dir: string,
): Promise<{ code: number; out: string }> {
  const bin = Deno.makeTempDirSync({ dir });
  Deno.writeTextFileSync(
    `${bin}/cln-backup`,
    `#!/bin/sh\nexec '${Deno.execPath()}' run -A '${CLI}' "$@"\n`,
    { mode: 0o755 },
  );
  const { INIT_CWD: _, ...inherited } = Deno.env.toObject();
  const { code, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", command],
    cwd: bin,
    clearEnv: true,
    env: { ...inherited, NO_COLOR: "1", PATH: `${bin}:${inherited.PATH}` },
  }).output();
  Deno.removeSync(bin, { recursive: true });
  const text = new TextDecoder();
  return { code, out: text.decode(stdout) + text.decode(stderr) };
}
