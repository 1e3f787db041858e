/**
 * Deno, and this checkout's CLI, placed where a test needs them whatever way this test's own
 * Deno came and wherever the checkout is: under `npx deno` Deno sits in root's npx cache,
 * which `init` rightly warns about, and another user (`nobody`) may reach neither it nor a
 * checkout in a private directory (CI clones into one, as a newcomer's home may be).
 *
 * @module
 */
import { dirname } from "node:path";

const PROJECT = new URL("../../", import.meta.url).pathname;

/** Puts this process's Deno at `path` (a hard link, or a copy across file systems). */
export function placeDeno(path: string): string {
  try {
    Deno.linkSync(Deno.execPath(), path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotSupported) && !/os error 18/.test(String(error))) {
      throw error;
    }
    Deno.copyFileSync(Deno.execPath(), path);
    Deno.chmodSync(path, 0o755);
  }
  return path;
}

function copyTree(from: string, to: string): void {
  Deno.mkdirSync(to, { mode: 0o755 });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isDirectory) copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

let shared: { deno: string; cli: string } | undefined;

/**
 * A Deno and a copy of the CLI's code that any user may run, in a directory of their own,
 * removed when this process ends.
 */
export function sharedCli(): { deno: string; cli: string } {
  if (shared) return shared;
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-shared-" });
  Deno.chmodSync(dir, 0o755);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  Deno.copyFileSync(`${PROJECT}cli.ts`, `${dir}/cli.ts`);
  copyTree(`${PROJECT}lib`, `${dir}/lib`);
  shared = { deno: placeDeno(`${dir}/deno`), cli: `${dir}/cli.ts` };
  return shared;
}

/** The directory the shared CLI runs in, so its working directory is one the user may enter. */
export function sharedDir(): string {
  return dirname(sharedCli().cli);
}

let cache: Promise<string> | undefined;

/**
 * The Deno cache this test process uses (`deno info`'s `denoDir`): it holds the npm packages
 * (the crypto libraries) and the compiled code, so a process given it loads them from there.
 * A test that runs a process with `HOME=/nonexistent` (a service user without a home) gives it
 * this, else Deno, run as root, would make `/nonexistent/.cache/deno` for its cache.
 */
export function denoCache(): Promise<string> {
  cache ??= new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output().then(
    ({ stdout }) => JSON.parse(new TextDecoder().decode(stdout)).denoDir as string,
  );
  return cache;
}
