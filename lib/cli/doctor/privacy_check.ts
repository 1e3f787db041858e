/**
 * The privacy check: a plain file backup holds the node's database in the clear (its
 * channels, peers and payments), so other users of this machine must not read it. init
 * makes a backup directory of mode 0700; one made before, or by hand, may be open.
 *
 * @module
 */
import { shellQuote } from "../../fs/shell_quote.ts";
import type { CheckResult, Found } from "./check.ts";

export function privacyCheck(found: Found): CheckResult {
  if (found.url?.scheme !== "file") {
    return ["OK", "a remote backup: who may read it is its server's or bucket's rule"];
  }
  if (found.description?.encrypted) return ["OK", "encrypted: its records are sealed"];
  const path = found.url.path;
  const mode = Deno.statSync(path).mode! & 0o777;
  if ((mode & 0o077) === 0) return ["OK", "readable by its owner only"];
  const tight = Deno.statSync(path).isDirectory ? "700" : "600";
  return [
    "WARN",
    `the backup "${path}" holds the node's database in the clear and other users of this ` +
    `machine may read it (mode ${mode.toString(8).padStart(4, "0")}): run ` +
    `"chmod ${tight} ${shellQuote(path)}", or encrypt it (upgrade --encrypt, lightningd stopped)`,
  ];
}
