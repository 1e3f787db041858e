/**
 * Modules that load npm packages Deno fetches on first use (the crypto libraries, the S3
 * signer, the certificate maker): where a package can be neither read from this user's Deno
 * cache nor fetched (offline, another user's cache), the import fails with Deno's loader
 * error, which is no bug of cln-backup's; it is said in one line that says what to do.
 *
 * @module
 */

/**
 * `loading`, an `import()` of a module that loads the npm packages `packages` ("age-encryption"),
 * with a package that cannot be fetched named in one line. Other errors pass through.
 */
export async function npmFirstUse<T>(loading: Promise<T>, packages: string): Promise<T> {
  try {
    return await loading;
  } catch (error) {
    if (!(error instanceof TypeError && /for package "|npm/.test(error.message))) throw error;
    // Deno's cause, its numbered line ("    0: Permission denied (os error 13)"), or its first.
    const lines = error.message.split("\n");
    const cause = (lines.findLast((line) => /^\s*\d+: /.test(line)) ?? lines[0])
      .replace(/^\s*\d+: /, "");
    throw new Error(
      `the npm package ${packages}, which Deno fetches on first use, is not in this user's ` +
        `Deno cache and could not be fetched (${cause}): run this once as this user where ` +
        `the npm registry is reachable, or set DENO_DIR to a Deno cache that holds it`,
    );
  }
}
