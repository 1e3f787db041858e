/**
 * The S3 requests the backup makes, signed with SigV4 (sigv4.ts). Each request is one
 * attempt bounded by a timeout; {@linkcode S3Error} says whether trying again can help.
 * Bodies are signed by their SHA-256 and carry Content-MD5, so the server checks every byte
 * it stores (no CRC32 or aws-chunked uploads, which many S3-compatible servers refuse).
 *
 * @module
 */
import { createHash } from "node:crypto";

import type { S3Url } from "./s3_url.ts";
import { caFileChanged, httpClientFor } from "./http_client.ts";
import { uploadAllowanceMs } from "../upload_allowance.ts";
import { parseListing, parseUploads, type Upload, xmlText } from "./xml.ts";
import { MAX_PAYLOAD_BYTES, RECORD_HEADER_SIZE } from "../../format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../../format/segment.ts";
import { concat } from "../../bytes/concat.ts";
import { npmFirstUse } from "../../fs/npm_first_use.ts";

export type { SigningKeys as S3Credentials } from "./sigv4.ts";
import type { SigningKeys as S3Credentials } from "./sigv4.ts";

/**
 * The most bytes an object read whole can hold: a pack is at most 16 MiB unless it holds one
 * change alone, and a change's payload is at most MAX_PAYLOAD_BYTES.
 */
export const MOST_OBJECT_BYTES = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + MAX_PAYLOAD_BYTES;

/**
 * The most bytes of an answer's text a client reads (a listing page, an error): a page of
 * 1000 keys of S3's longest (1 KiB each) is about 1.2 MB.
 */
const MOST_TEXT_BYTES = 16 * 1024 * 1024;

/** An answer whose body holds more bytes than the request can take (see readBody). */
class OverLimit extends Error {}

/**
 * An answer's body, refused once it holds more than `limit` bytes: by its Content-Length
 * before anything is read, else as its bytes come. A server that sends more than the object
 * it names can hold (broken, or hostile) cannot make a reader allocate without bound.
 */
async function readBody(response: Response, limit: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  const body = response.body;
  if (declared > limit) {
    await body?.cancel().catch(() => {});
    throw new OverLimit();
  }
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > limit) {
      // Leaving the loop cancels the stream: no more of it is read.
      throw new OverLimit();
    }
    chunks.push(chunk);
  }
  return concat(chunks);
}

/**
 * The bytes a read is given time for: those it expects, but never more than an object can
 * hold, so a wrong size in a listing (terabytes, say) cannot make it wait for days.
 */
export function readAllowanceBytes(expectedBytes: number): number {
  return Math.min(Math.max(0, expectedBytes), MOST_OBJECT_BYTES);
}

export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * The signer (sigv4.ts, which loads aws4fetch), named by a computed URL so that Deno fetches
 * the package only when an S3 request is made: `deno compile` includes it by name.
 */
export const SIGV4_MODULE = new URL("./sigv4.ts", import.meta.url);
let sigv4: Promise<typeof import("./sigv4.ts")> | undefined;

/**
 * A request that failed: `transient` when the same request may succeed later; `unsent` when
 * it certainly never reached the service (it could not be made, signed or connected), so a
 * `PUT` so failed stored nothing.
 */
export class S3Error extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly code: string | undefined,
    readonly transient: boolean,
    readonly unsent = false,
  ) {
    super(message);
    this.name = "S3Error";
  }
}

/** One object as a listing shows it. */
export interface S3Object {
  key: string;
  size: number;
}

const KEYS_HINT = ": check the keys (the plugin's in backup-s3.credentials beside " +
  "backup.lock, a command's in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and that their " +
  "policy allows the backup's actions on this bucket and prefix (README, S3)";

const EXPIRED_HINT = ": the keys' session token expired: write fresh temporary keys (the " +
  "plugin's to backup-s3.credentials beside backup.lock, which it reads again when S3 refuses " +
  "its keys; a command's to AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)";

/** What to do about the errors an operator can fix. */
const HINTS: Record<string, string> = {
  NoSuchBucket: ": the bucket does not exist: create it, or fix the bucket or endpoint in the URL",
  AccessDenied: KEYS_HINT,
  InvalidAccessKeyId: KEYS_HINT,
  SignatureDoesNotMatch: KEYS_HINT,
  ExpiredToken: EXPIRED_HINT,
  TokenRefreshRequired: EXPIRED_HINT,
  QuotaExceeded: ": the quota of the bucket or of its owner is full: raise it, or free space",
  SlowDown: ": S3 asks for fewer requests",
  RequestTimeTooSkewed: ": this machine's clock is too far off S3's: set it right (NTP), then " +
    "try again",
};

/**
 * Codes of a request that passes when sent again: S3's own timeout, fewer requests asked
 * for, and a write that met another to the same key under way (Amazon's 409 to a
 * conditional PUT while an earlier try of it, which timed out here, is still being stored).
 */
const PASSING = ["RequestTimeout", "SlowDown", "ConditionalRequestConflict", "OperationAborted"];

/** Amazon's answers to a request signed for, or sent to, another region than the bucket's. */
const WRONG_REGION = [
  "PermanentRedirect",
  "AuthorizationHeaderMalformed",
  "IllegalLocationConstraintException",
];

/** What to do about an answer whose code says the URL's region is not the bucket's. */
function regionHint(response: Response): string {
  const region = response.headers.get("x-amz-bucket-region");
  return region
    ? `: the bucket is in region ${region}: write region=${region} in the URL (and its endpoint ` +
      `if the URL names one)`
    : ": the bucket is in another region than the URL's: fix region= (or endpoint=) in the URL";
}

/** Whether `fetch` failed on the endpoint's certificate: no retry makes it trusted. */
function untrusted(error: Error): boolean {
  return error.cause instanceof Error && /invalid peer certificate/.test(error.cause.message);
}

/**
 * Whether `fetch` failed before the request went out: it made no connection (a name that
 * does not resolve, one refused, a TLS handshake that failed), which its cause calls
 * "client error (Connect)"; one cut after is "(SendRequest)".
 */
function unconnected(error: Error): boolean {
  return error.cause instanceof Error && /client error \(Connect\)/.test(error.cause.message);
}

/**
 * Why `fetch` failed: its own message is "fetch failed", and the reason (connection refused,
 * a name that does not resolve, a TLS error) is in its cause, after the request's URL.
 */
function fetchFailure(error: Error, url: S3Url): string {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  if (!cause) return error.message;
  const why = `${error.message}: ${
    cause.replace(/^error sending request for url \([^)]*\): /, "")
  }`;
  if (!untrusted(error)) return why;
  // Another fault of a certificate that chains to a public CA (a name it lacks, a date past)
  // is not fixed by ca=: its own words say what it is.
  if (url.ca === undefined) {
    return /UnknownIssuer/.test(cause)
      ? `${why}: the endpoint's certificate chains to no CA this machine trusts: if a CA of ` +
        `your own issued it, name its PEM file with ca=/path in the URL`
      : why;
  }
  return `${why}: the endpoint's certificate must chain to a CA in "${url.ca}" (the URL's ca=) ` +
    `or a public one, and name the endpoint's host`;
}

/** How far a listing may go before it is refused as one without end. */
export interface ListingBound {
  /** Keys (or uploads) listed. */
  entries: number;
  /** Pages asked for, empty ones too. */
  pages: number;
}

/**
 * A backup's own objects are few: its bases, at most about 1001 change objects, key.json,
 * backup-id, claim, and one pack per 1000 changes (two million packs are two billion changes,
 * decades of a change a second). A listing also shows what other tools keep in sub-folders
 * of the prefix: two million keys leave room for far more of theirs than of the backup's,
 * while what a reader holds of them stays bounded (keys of at most 1 KiB, xml.ts): about
 * 250 MB for keys as long as a backup's. Pages of S3's 1000 keys would be 2000; the bound on
 * pages leaves room for smaller or empty pages (S3 sends empty ones past the delete markers of
 * a versioned bucket), and ends fresh tokens on empty pages for ever.
 */
export const LISTING_BOUND: ListingBound = { entries: 2_000_000, pages: 50_000 };

/**
 * Where a listing has got to: the pages and entries so far, and digests of where its pages
 * started (a server could send tokens of megabytes each).
 */
class Walk {
  readonly #starts = new Set<string>();
  #pages = 0;
  #entries = 0;

  constructor(
    readonly bound: ListingBound,
    /** What could not be done, and where S3 is, for messages. */
    readonly what: string,
    readonly where: string,
    /** What the listing's starts are called: "a continuation token", "markers". */
    readonly named: string,
  ) {}

  /**
   * Takes note of a page of `entries` and of where the next starts (`next`, absent at the
   * end). A start given before is refused, to be listed again: its pages would come round for
   * ever. A listing past the bound is refused for good: listed again, it would go as far.
   */
  onward(entries: number, next: string | undefined): void {
    this.#pages++;
    this.#entries += entries;
    const past = this.#entries > this.bound.entries
      ? `${this.bound.entries} entries`
      : this.#pages > this.bound.pages
      ? `${this.bound.pages} pages`
      : undefined;
    if (past !== undefined) {
      throw new S3Error(
        `${this.what}: the listing goes on past ${past} (${this.where}), more than a ` +
          `backup's prefix holds: check the S3 service, and that no other tool keeps its ` +
          `objects under the backup's prefix`,
        200,
        "",
        false,
      );
    }
    if (next === undefined) return;
    const digest = createHash("sha256").update(next).digest("base64");
    if (this.#starts.has(digest)) {
      throw new S3Error(
        `${this.what}: the listing gives ${this.named} it gave before (${this.where}), so ` +
          `its pages would come round for ever: check the S3 service`,
        200,
        "",
        true,
      );
    }
    this.#starts.add(digest);
  }
}

/**
 * Codes of a request refused for its keys (besides any 403): keys read again from where they
 * came from (the plugin's keys' file, rewritten as temporary keys expire or keys rotate) may
 * be accepted.
 */
const REFUSED_KEYS = ["ExpiredToken", "InvalidToken", "TokenRefreshRequired"];

export class S3Client {
  /** The day's signing key, derived once rather than on every request. */
  readonly #signingKeys = new Map<string, ArrayBuffer>();
  #credentials: S3Credentials;
  /**
   * Whether S3 took the keys held: keys read again may be refused a while (Amazon's IAM
   * takes seconds to know a key just made), so a refusal of them is tried again.
   */
  #taken = true;

  constructor(
    readonly url: S3Url,
    credentials: S3Credentials,
    /**
     * Milliseconds each request (and the reading of its answer) may take, and one more second
     * for every 128 KiB it uploads.
     */
    readonly timeoutMs = 10_000,
    /**
     * Reads the keys again from where they came from, once S3 refused them: a request
     * refused for keys that differ from those read now is tried again with them, and one
     * whose keys' file does not read now (being written) tried again to read it then.
     */
    readonly renew?: () => S3Credentials,
  ) {
    this.#credentials = credentials;
  }

  /** The keys requests are signed with now. */
  get credentials(): S3Credentials {
    return this.#credentials;
  }

  /**
   * Whether keys other than `refused` sign the next request (`true`): read again by `renew`,
   * or already by a request refused before; `false` when they are the keys refused. Why the
   * refused keys are worth another try: a file that does not read now (written in place
   * meanwhile, or refused: its mode) keeps the keys held, to be read again at the next try,
   * and keys read again that S3 has not taken yet may be taken soon.
   */
  #renewed(refused: S3Credentials): boolean | string {
    if (this.#credentials === refused && this.renew !== undefined) {
      let keys: S3Credentials;
      try {
        keys = this.renew();
      } catch (error) {
        const why = (error as Error).message.replace(/^Cannot reach the S3 backup: /, "");
        return `reading them again failed: ${why}`;
      }
      const same = keys.accessKeyId === refused.accessKeyId &&
        keys.secretAccessKey === refused.secretAccessKey &&
        keys.sessionToken === refused.sessionToken;
      if (!same) {
        this.#credentials = keys;
        this.#taken = false;
        this.#signingKeys.clear();
      }
    }
    return this.#credentials !== refused ||
      (!this.#taken && "keys read again, which S3 has not taken yet (a key just made takes " +
          "seconds to reach all of it): tried again");
  }

  /** Where S3 is, for messages: `bucket "b" at http://host:port`. */
  get where(): string {
    return `bucket "${this.url.bucket}" at ${this.url.endpoint}`;
  }

  /** The HTTP client of the URL's CA file, if it names one; a CA file that does not read throws. */
  #client(what: string): Deno.HttpClient | undefined {
    try {
      return httpClientFor(this.url);
    } catch (error) {
      // A CA file the launcher does not let it read: as a request it does not allow.
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new S3Error(
        `${what}: ${(error as Error).message}`,
        undefined,
        undefined,
        false,
        true,
      );
    }
  }

  /**
   * Whether a request that `fetch` failed may succeed if tried again: not on a certificate
   * that is not trusted, unless the CA file changed since its client was made.
   */
  #passing(error: Error): boolean {
    return !untrusted(error) || caFileChanged(this.url);
  }

  #resource(key: string, query = ""): string {
    const path = key.split("/").map(uriEncode).join("/");
    const endpoint = new URL(this.url.endpoint);
    const base = this.url.pathStyle
      ? `${endpoint.origin}/${this.url.bucket}`
      : `${endpoint.protocol}//${this.url.bucket}.${endpoint.host}`;
    return `${base}/${path}${query === "" ? "" : `?${query}`}`;
  }

  /** The signed headers of a request; `headers` may hold Content-MD5, If-None-Match, If-Match. */
  async #sign(
    what: string,
    method: string,
    resource: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    keys: S3Credentials,
  ): Promise<Headers> {
    const { signRequest } = await (sigv4 ??= npmFirstUse(import(SIGV4_MODULE.href), "aws4fetch"));
    try {
      return await signRequest({
        method,
        url: resource,
        headers,
        payloadSha256: body === undefined
          ? EMPTY_SHA256
          : createHash("sha256").update(body).digest("hex"),
        keys,
        region: this.url.region,
        cache: this.#signingKeys,
      });
    } catch (error) {
      // A key a header cannot hold: no retry mends it. Named, not quoted: the error quotes the
      // header, which holds the session token, and a line break would split the line.
      const key = unsendableKey(keys);
      if (key === undefined) throw error;
      throw new S3Error(
        `${what}: the S3 ${key} holds a character a request header cannot carry ` +
          `(${this.where}): check the ${key} for a stray character`,
        undefined,
        undefined,
        false,
        true,
      );
    }
  }

  /**
   * One signed request; a non-2xx answer throws {@linkcode S3Error} after reading its code.
   * It waits `waitMs` for its answer and the reading of its body: by default the timeout, and
   * the time a slow link takes for the bytes it uploads.
   */
  async #request(
    what: string,
    method: string,
    resource: string,
    body?: Uint8Array,
    headers: Record<string, string> = {},
    waitMs = this.timeoutMs + uploadAllowanceMs(body?.length ?? 0),
  ): Promise<Response> {
    const all: Record<string, string> = { ...headers };
    if (body !== undefined) all["content-md5"] = createHash("md5").update(body).digest("base64");
    const client = this.#client(what);
    const keys = this.#credentials;
    // Signed before the request: a signer that cannot be loaded is no failure to retry.
    const signed = await this.#sign(what, method, resource, all, body, keys);
    let response: Response;
    try {
      response = await fetch(resource, {
        client,
        method,
        headers: signed,
        body: body as BodyInit | undefined,
        signal: AbortSignal.timeout(waitMs),
        // A signed request cannot follow a redirect (its host is signed, and the launcher
        // allows the endpoint only); unfollowed, S3's answer keeps its code (a 301 followed
        // has no body).
        redirect: "manual",
      });
    } catch (error) {
      // A permission this process lacks: no retry grants it (the plugin names the launcher).
      if (error instanceof Deno.errors.NotCapable) throw error;
      const timedOut = (error as Error).name === "TimeoutError";
      throw new S3Error(
        `${what}: ${
          timedOut ? `no answer within ${waitMs / 1000} s` : fetchFailure(error as Error, this.url)
        } (${this.where})`,
        undefined,
        undefined,
        this.#passing(error as Error),
        unconnected(error as Error),
      );
    }
    if (response.ok) {
      if (keys === this.#credentials) this.#taken = true;
      return response;
    }
    let text = "";
    // An answer cut inside its body (the server killed, the connection lost) lost its code:
    // a 404 so cut may not be NoSuchKey, so it is asked again rather than taken as final.
    let cut = false;
    try {
      text = new TextDecoder().decode(await readBody(response, MOST_TEXT_BYTES));
    } catch {
      cut = true;
    }
    const code = xmlText(text, "Code");
    const status = response.status;
    const hint = WRONG_REGION.includes(code ?? "")
      ? regionHint(response)
      : HINTS[code ?? ""] ?? (status === 403 ? HINTS.AccessDenied : "");
    const renewed = (status === 403 || REFUSED_KEYS.includes(code ?? "")) && this.#renewed(keys);
    throw new S3Error(
      `${what}: ${status} ${code ?? response.statusText} (${this.where})${
        renewed === true
          ? ": the keys were replaced meanwhile"
          : renewed
          ? `${hint}; ${renewed}`
          : hint
      }`,
      status,
      code,
      cut || renewed !== false || status >= 500 || status === 429 ||
        PASSING.includes(code ?? ""),
    );
  }

  /**
   * The text of a 2xx answer to a request that changes nothing (a listing, a new upload's
   * id): a connection cut while it is read is worth a retry.
   */
  async #text(what: string, response: Response): Promise<string> {
    return new TextDecoder().decode(await this.#body(what, response, MOST_TEXT_BYTES));
  }

  /** A 2xx answer's body, of at most `limit` bytes; a connection cut on the way is transient. */
  async #body(what: string, response: Response, limit: number): Promise<Uint8Array> {
    try {
      return await readBody(response, limit);
    } catch (error) {
      if (error instanceof OverLimit) {
        throw new S3Error(
          `${what}: the answer holds more than the ${limit} bytes it can (${this.where}): ` +
            `the server is not answering as S3 does, or the object is damaged: check the ` +
            `endpoint, or restore from another copy`,
          200,
          "",
          false,
        );
      }
      throw new S3Error(`${what}: ${(error as Error).message} (${this.where})`, 200, "", true);
    }
  }

  async #done(what: string, method: string, resource: string, body?: Uint8Array, headers = {}) {
    const response = await this.#request(what, method, resource, body, headers);
    // The status says it is done; a connection cut in the body after it changes nothing.
    await response.body?.cancel().catch(() => {});
    return response;
  }

  /**
   * Stores an object; with `create`, only where no object of that key exists, with
   * `ifMatch`, only over the object of that ETag (else 412).
   */
  async put(
    key: string,
    body: Uint8Array,
    options: { create?: boolean; ifMatch?: string } = {},
  ): Promise<void> {
    const headers: Record<string, string> = {};
    if (options.create) headers["if-none-match"] = "*";
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch;
    await this.#done(`Cannot store "${key}"`, "PUT", this.#resource(key), body, headers);
  }

  /**
   * An object's bytes, read whole within the timeout; one expected to hold `expectedBytes`
   * (a large change or pack, its size known) gets the time a slow link takes for them too.
   * An answer of more than `maxBytes` (at most what an object read whole can hold) is
   * refused as its bytes come: a reader that knows the object's size from a listing passes
   * it, so that memory holds only what the listing promised.
   */
  async get(key: string, expectedBytes = 0, maxBytes = MOST_OBJECT_BYTES): Promise<Uint8Array> {
    return (await this.getTagged(key, expectedBytes, maxBytes)).bytes;
  }

  /**
   * An object's bytes as {@linkcode get} reads them, and its ETag (`undefined` if the server
   * sends none), for a `put` with `ifMatch` that replaces only what was read.
   */
  async getTagged(
    key: string,
    expectedBytes = 0,
    maxBytes = MOST_OBJECT_BYTES,
  ): Promise<{ bytes: Uint8Array; etag: string | undefined }> {
    const what = `Cannot read "${key}"`;
    const resource = this.#resource(key);
    const waitMs = this.timeoutMs + uploadAllowanceMs(readAllowanceBytes(expectedBytes));
    const response = await this.#request(what, "GET", resource, undefined, {}, waitMs);
    const bytes = await this.#body(what, response, Math.min(maxBytes, MOST_OBJECT_BYTES));
    return { bytes, etag: response.headers.get("etag") ?? undefined };
  }

  /**
   * An object's bytes as they arrive (a base is larger than memory should hold), all within
   * `timeoutMs`. A failure says what S3 answered, as other requests' do: NoSuchKey for an
   * object deleted since its listing, which a reader lists again for.
   */
  async getStream(key: string, timeoutMs: number): Promise<ReadableStream<Uint8Array>> {
    const what = `Cannot read "${key}"`;
    const response = await this.#request(
      what,
      "GET",
      this.#resource(key),
      undefined,
      {},
      timeoutMs,
    );
    return response.body ?? new ReadableStream({ start: (controller) => controller.close() });
  }

  async delete(key: string): Promise<void> {
    await this.#done(`Cannot delete "${key}"`, "DELETE", this.#resource(key));
  }

  /**
   * Every object under `prefix`, in key order, a page (up to 1000) at a time. A continuation
   * token given before is refused (and the listing tried again): the pages from it, empty
   * ones even, would come round for ever. A listing past `bound` is refused too: fresh
   * tokens for ever would never end it either.
   */
  async *list(prefix: string, bound: ListingBound = LISTING_BOUND): AsyncGenerator<S3Object[]> {
    let token: string | undefined;
    const what = `Cannot list "${prefix}"`;
    const walk = new Walk(bound, what, this.where, "a continuation token");
    do {
      const params: [string, string][] = [
        ["encoding-type", "url"],
        ["list-type", "2"],
        ["prefix", prefix],
      ];
      if (token !== undefined) params.push(["continuation-token", token]);
      const query = params.map(([k, v]) => `${k}=${uriEncode(v)}`).join("&");
      const response = await this.#request(what, "GET", this.#resource("", query));
      const page = parseListing(await this.#text(what, response));
      token = page.nextToken;
      walk.onward(page.objects.length, token);
      yield page.objects;
    } while (token !== undefined);
  }

  /**
   * The bucket's lifecycle configuration (GetBucketLifecycleConfiguration), as XML;
   * `undefined` when it has none.
   */
  async lifecycle(): Promise<string | undefined> {
    const what = `Cannot read the lifecycle rules of ${this.where}`;
    try {
      const response = await this.#request(what, "GET", this.#resource("", "lifecycle="));
      return await this.#text(what, response);
    } catch (error) {
      if (error instanceof S3Error && error.code === "NoSuchLifecycleConfiguration") return;
      throw error;
    }
  }

  async createBucket(): Promise<void> {
    await this.#done(`Cannot create ${this.where}`, "PUT", this.#resource(""));
  }

  /** Starts a multipart upload; returns its id. */
  async createMultipart(key: string): Promise<string> {
    const what = `Cannot start uploading "${key}"`;
    const response = await this.#request(what, "POST", this.#resource(key, "uploads="));
    const id = xmlText(await this.#text(what, response), "UploadId");
    if (id === undefined) throw new S3Error(`${what}: no UploadId in the answer`, 200, "", false);
    return id;
  }

  /** Uploads part `part` (from 1); returns its ETag. */
  async uploadPart(key: string, uploadId: string, part: number, body: Uint8Array) {
    const query = `partNumber=${part}&uploadId=${uriEncode(uploadId)}`;
    const response = await this.#done(
      `Cannot upload part ${part} of "${key}"`,
      "PUT",
      this.#resource(key, query),
      body,
    );
    const etag = response.headers.get("etag");
    if (etag === null) {
      throw new S3Error(`Cannot upload part ${part} of "${key}": no ETag`, 200, "", false);
    }
    return etag;
  }

  async completeMultipart(key: string, uploadId: string, etags: string[]): Promise<void> {
    const parts = etags.map((etag, i) =>
      `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`
    ).join("");
    const body = new TextEncoder().encode(
      `<CompleteMultipartUpload>${parts}</CompleteMultipartUpload>`,
    );
    const what = `Cannot finish uploading "${key}"`;
    const response = await this.#request(
      what,
      "POST",
      this.#resource(key, `uploadId=${uriEncode(uploadId)}`),
      body,
    );
    // S3 may answer 200 and put the error in the body.
    const text = await this.#text(what, response);
    const code = xmlText(text, "Code");
    if (code !== undefined) throw new S3Error(`${what}: ${code}`, 200, code, code === "SlowDown");
  }

  /**
   * The unfinished multipart uploads of keys under `prefix`, a page at a time. Markers given
   * before are refused (and the listing tried again), and a listing past LISTING_BOUND, as
   * list()'s are.
   */
  async *listMultipart(prefix: string): AsyncGenerator<Upload[]> {
    let marker: Upload | undefined;
    const what = `Cannot list the uploads under "${prefix}"`;
    const walk = new Walk(LISTING_BOUND, what, this.where, "markers");
    do {
      const params: [string, string][] = [["prefix", prefix], ["uploads", ""]];
      if (marker) params.push(["key-marker", marker.key], ["upload-id-marker", marker.uploadId]);
      const query = params.map(([k, v]) => `${k}=${uriEncode(v)}`).join("&");
      const response = await this.#request(what, "GET", this.#resource("", query));
      const page = parseUploads(await this.#text(what, response));
      marker = page.next;
      const given = marker && JSON.stringify([marker.key, marker.uploadId]);
      walk.onward(page.uploads.length, given);
      yield page.uploads;
    } while (marker !== undefined);
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    await this.#done(
      `Cannot abort uploading "${key}"`,
      "DELETE",
      this.#resource(key, `uploadId=${uriEncode(uploadId)}`),
    );
  }
}

/** RFC 3986 percent-encoding, as S3 keys and query values want it (all but `A-Za-z0-9-._~`). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** Which of `keys` a request header cannot carry (a NUL, a line break, past Latin-1), if any. */
function unsendableKey(keys: S3Credentials): string | undefined {
  const unsendable = /[\0\r\n]|[^\0-\xff]/;
  if (unsendable.test(keys.accessKeyId)) return "access key id";
  if (unsendable.test(keys.sessionToken ?? "")) return "session token";
  return undefined;
}
