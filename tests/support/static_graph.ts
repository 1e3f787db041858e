/**
 * The modules an entry script reaches by static imports: what Deno evaluates at its every
 * start, before any dynamic `import()`.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url).href;

interface Module {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/**
 * The modules `entry` (a path from the checkout's root) reaches by static (not dynamic, not
 * type-only) imports, as paths from the root (`node:` built-ins as they are). Read from this
 * checkout alone, as in a fresh clone offline: an empty Deno cache, a registry that cannot be
 * reached, and nothing fetched (the npm packages are no file of ours).
 */
export async function staticGraph(entry: string): Promise<string[]> {
  const denoDir = Deno.makeTempDirSync({ prefix: "empty-deno-dir-" });
  const { stdout, stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      "--no-config",
      "--no-lock",
      "--no-npm",
      "--no-remote",
      new URL(entry, ROOT).pathname,
    ],
    env: { DENO_DIR: denoDir, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/", NO_COLOR: "1" },
  }).output().finally(() => Deno.removeSync(denoDir, { recursive: true }));
  const said = new TextDecoder().decode(stderr);
  if (!success || said !== "") throw new Error(`deno info: ${said}`);
  const modules: Module[] = JSON.parse(new TextDecoder().decode(stdout)).modules;
  const bySpecifier = new Map(modules.map((module) => [module.specifier, module]));
  const reached = new Set<string>();
  const next = [new URL(entry, ROOT).href];
  for (let specifier; (specifier = next.pop()) !== undefined;) {
    if (reached.has(specifier)) continue;
    reached.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) next.push(dependency.code.specifier);
    }
  }
  return [...reached].map((specifier) => specifier.replace(ROOT, ""));
}

/**
 * Code only a `socket:` or `s3://` destination needs: their backends (but the modules that only
 * name their files or parse their URLs), wire packets and TLS.
 */
export function isRemoteOnly(path: string): boolean {
  return (/^lib\/backends\/(socket|s3)\//.test(path) &&
    !["lib/backends/socket/credential_name.ts", "lib/backends/s3/s3_url.ts"].includes(path)) ||
    path.startsWith("lib/wire/") || ["node:tls", "node:net"].includes(path);
}
