/**
 * The HTTP client S3 requests go through: `fetch`'s own, which trusts the public CAs, unless
 * the URL names a PEM file of CA certificates (`ca=`: a store whose certificate the operator's
 * own CA issued), whose certificates it trusts besides. One client per CA file and process,
 * so that its connections serve the next requests too; made again when the file changed, as
 * a `socket+tls:` URL's CA file is read at each connection.
 *
 * @module
 */
import type { S3Url } from "./s3_url.ts";
import { readCaFile } from "../ca_file.ts";

/** Each CA file's client, and the certificates it was made from. */
const clients = new Map<string, { pem: string; client: Deno.HttpClient }>();

/**
 * The client for `url`'s requests: `undefined` for `fetch`'s own. Throws when the CA file does
 * not read: a read the launcher does not allow as Deno's NotCapable (the plugin names doctor).
 */
export function httpClientFor(url: S3Url): Deno.HttpClient | undefined {
  if (url.ca === undefined) return undefined;
  let held = clients.get(url.ca);
  if (held === undefined) {
    const pem = readCaFile(url.ca);
    try {
      held = { pem, client: Deno.createHttpClient({ caCerts: [pem] }) };
    } catch (error) {
      throw new Error(
        `"${url.ca}", which the URL's ca= names, holds no usable PEM certificate ` +
          `(${(error as Error).message}): put the CA's certificates there`,
      );
    }
    clients.set(url.ca, held);
  }
  return held.client;
}

/**
 * Whether `url`'s CA file, read anew, holds other certificates than its client was made from
 * (the store's CA replaced while the plugin runs): the next request then makes its client from
 * them. A file that does not read now keeps the client it has.
 */
export function caFileChanged(url: S3Url): boolean {
  const held = url.ca === undefined ? undefined : clients.get(url.ca);
  if (held === undefined) return false;
  try {
    if (Deno.readTextFileSync(url.ca!) === held.pem) return false;
  } catch {
    return false;
  }
  clients.delete(url.ca!);
  return true;
}
