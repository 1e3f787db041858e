/**
 * The hsm_secret check: the node's secret exists with mode 0400. The database backup is
 * useless without it, so doctor reminds the operator to keep it separately.
 *
 * @module
 */
import { statIfExists } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import type { CheckResult, Found } from "./check.ts";

export function hsmSecretCheck(found: Found): CheckResult {
  const path = `${found.dir}/hsm_secret`;
  const why = "the database backup is useless without it: back it up separately (once, " +
    "offline; it never changes)";
  const info = statIfExists(path);
  if (!info) {
    return [
      "WARN",
      `no hsm_secret in "${found.dir}" (a node that has not started yet, or the wrong ` +
      `directory?): once lightningd creates it, ${why}`,
    ];
  }
  const mode = (info.mode ?? 0) & 0o777;
  if (mode !== 0o400) {
    return [
      "WARN",
      `"${path}" has mode ${mode.toString(8).padStart(4, "0")}, not 0400: run "chmod 400 ` +
      `${shellQuote(path)}"; and ${why}`,
    ];
  }
  return ["OK", `present, mode 0400; ${why}`];
}
