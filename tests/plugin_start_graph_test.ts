/**
 * What the plugin evaluates at every start, whatever its backup: the modules plugin.ts reaches
 * by static imports. A file backup, the common case, must not pay for the code only other
 * destinations need (remote_destinations.ts loads it when backup.lock names one), nor for the
 * compaction itself, which runs on a worker: each was measured to cost the start CPU.
 */
import { assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).href;
const PLUGIN = new URL("plugin.ts", ROOT).pathname;

interface Module {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/**
 * The specifiers plugin.ts reaches by static (not dynamic, not type-only) imports. Read from
 * this checkout alone, as in a fresh clone offline: an empty Deno cache, a registry that
 * cannot be reached, and nothing fetched (the npm packages are no file of ours).
 */
async function staticGraph(): Promise<Set<string>> {
  const denoDir = Deno.makeTempDirSync({ prefix: "empty-deno-dir-" });
  const { stdout, stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config", "--no-lock", "--no-npm", "--no-remote", PLUGIN],
    env: { DENO_DIR: denoDir, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/", NO_COLOR: "1" },
  }).output().finally(() => Deno.removeSync(denoDir, { recursive: true }));
  const said = new TextDecoder().decode(stderr);
  if (!success || said !== "") throw new Error(`deno info: ${said}`);
  const modules: Module[] = JSON.parse(new TextDecoder().decode(stdout)).modules;
  const bySpecifier = new Map(modules.map((module) => [module.specifier, module]));
  const reached = new Set<string>();
  const next = [new URL("plugin.ts", ROOT).href];
  for (let specifier; (specifier = next.pop()) !== undefined;) {
    if (reached.has(specifier)) continue;
    reached.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) next.push(dependency.code.specifier);
    }
  }
  return reached;
}

Deno.test("plugin start: no socket:, s3:// or wire code, no TLS, no compaction or restore is loaded by static imports", async () => {
  const graph = [...await staticGraph()].map((specifier) => specifier.replace(ROOT, ""));
  const remoteOnly = graph.filter((path) =>
    (/^lib\/backends\/(socket|s3)\//.test(path) &&
      !["lib/backends/socket/credential_name.ts", "lib/backends/s3/s3_url.ts"].includes(path)) ||
    path.startsWith("lib/wire/") ||
    ["node:tls", "node:net", "node:stream/promises", "node:sqlite"].includes(path) ||
    ["lib/compact/compact.ts", "lib/backup/restore.ts"].includes(path)
  );
  assertEquals(remoteOnly, []);
});
