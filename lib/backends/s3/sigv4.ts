/**
 * AWS Signature Version 4 for the backup's S3 requests, by aws4fetch (a kept, dependency-free
 * signer on WebCrypto). The body's SHA-256 is signed in, not `UNSIGNED-PAYLOAD`, so a body
 * changed on the way is refused. Loaded by client.ts on the first request only, so a node
 * without an S3 destination never needs the package.
 *
 * @module
 */
import { AwsV4Signer } from "npm:aws4fetch@1";

/** The AWS access keys a request is signed with. */
export interface SigningKeys {
  /** The access key's id (`AWS_ACCESS_KEY_ID`). */
  accessKeyId: string;
  /** Its secret (`AWS_SECRET_ACCESS_KEY`). */
  secretAccessKey: string;
  /** A temporary key's session token (`AWS_SESSION_TOKEN`), when it has one. */
  sessionToken?: string;
}

/** What a request needs to be signed. */
export interface UnsignedRequest {
  method: string;
  url: string;
  /** Headers to sign besides those SigV4 adds, e.g. Content-MD5, If-None-Match. */
  headers: Record<string, string>;
  /** The body's SHA-256 in hex. */
  payloadSha256: string;
  keys: SigningKeys;
  region: string;
  now?: Date;
  /** Where the day's signing key is kept between requests (one per client). */
  cache?: Map<string, ArrayBuffer>;
}

/**
 * The request's headers: the given ones, `x-amz-date`, `x-amz-content-sha256`, the session
 * token when there is one, and `authorization`, which signs them all.
 */
export async function signRequest(request: UnsignedRequest): Promise<Headers> {
  const signer = new AwsV4Signer({
    method: request.method,
    url: request.url,
    headers: { ...request.headers, "x-amz-content-sha256": request.payloadSha256 },
    accessKeyId: request.keys.accessKeyId,
    secretAccessKey: request.keys.secretAccessKey,
    sessionToken: request.keys.sessionToken,
    service: "s3",
    region: request.region,
    datetime: request.now?.toISOString().replace(/[:-]|\.\d{3}/g, ""),
    cache: request.cache,
  });
  return (await signer.sign()).headers;
}
