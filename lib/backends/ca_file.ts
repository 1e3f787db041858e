/**
 * The PEM file of CA certificates a URL's `ca=` names (`socket+tls:`, `s3://`), read as a
 * connection is made. A read the launcher does not allow stays Deno's NotCapable, which the
 * plugin turns into "run doctor"; any other failure is one line saying what to fix.
 *
 * @module
 */

/** The certificates in `path`, as text. */
export function readCaFile(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new Error(
      `cannot read the CA certificates "${path}" the URL names (${(error as Error).message}): ` +
        `put the PEM file there, readable by this user, or fix ca= in the URL`,
    );
  }
}
