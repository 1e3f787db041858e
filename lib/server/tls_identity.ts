/**
 * The server's TLS identity: `tls.crt` and `tls.key` (mode 0600) in its root, made once by
 * `server init-tls`. Nodes pin the certificate by its SHA-256 fingerprint
 * (`socket+tls:host:port?fp=sha256:<hex>`), so it needs no certificate authority; or, when
 * the operator put one a CA issued there, trust that CA (`?ca=/path/ca.pem`).
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { outOfRoomWriting } from "../fs/os_error.ts";
import { hex } from "../crypto/data_key.ts";
import { writeFileDurably } from "../fs/durable.ts";
import { checkSecretMode } from "../fs/secret_mode.ts";
import { npmFirstUse } from "../fs/npm_first_use.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { unreadableByServer } from "./root_owner.ts";

export const TLS_CERT_NAME = "tls.crt";
export const TLS_KEY_NAME = "tls.key";

/** Named by a computed URL so that Deno fetches its npm packages only when it is used. */
export const X509_MODULE = new URL("./x509.ts", import.meta.url);

/** The server's certificate and private key, as read from `tls.crt` and `tls.key`. */
export interface TlsIdentity {
  /** The certificate, PEM text. */
  cert: string;
  /** Its private key, PEM text. */
  key: string;
}

/** `sha256:<hex>` of the first certificate in `pem`'s DER bytes. */
export async function fingerprint(pem: string): Promise<string> {
  const base64 = /-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/.exec(pem)?.[1];
  if (!base64) throw new Error("Cannot read TLS certificate: it holds no PEM certificate");
  const der = Uint8Array.from(atob(base64.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  return `sha256:${hex(new Uint8Array(await crypto.subtle.digest("SHA-256", der)))}`;
}

/**
 * Throws when `cert` or `key` does not load, or `key` is not `cert`'s, naming their files
 * when `paths` are given: the server stops before it listens (node:tls would only fail each
 * handshake).
 */
export function checkIdentity(
  cert: string,
  key: string,
  paths?: { cert: string; key: string },
): void {
  const at = (path: string | undefined) => path === undefined ? "" : ` "${path}"`;
  let certificate: X509Certificate;
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new Error(
      `the TLS certificate${at(paths?.cert)} does not load: ${(error as Error).message}`,
    );
  }
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new Error(`the TLS key${at(paths?.key)} does not load: ${(error as Error).message}`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(
      `the TLS key${at(paths?.key)} is not the certificate's${paths ? ` ("${paths.cert}")` : ""}`,
    );
  }
}

/**
 * The identity in `root`, or `undefined` when it has none. One that cannot serve (no key, a
 * key others may read, a file that does not load, a key not the certificate's) throws, in
 * words about those files: thrown from the listener, it read as a fault of the address.
 */
export function loadTlsIdentity(root: string): TlsIdentity | undefined {
  const action = "Cannot serve backup";
  const certPath = join(root, TLS_CERT_NAME);
  if (!existsSync(certPath)) return undefined;
  const keyPath = join(root, TLS_KEY_NAME);
  const replace = (what: "it" | "both") =>
    `or move ${what} away and run "server init-tls ${root}" (nodes then pin its new ` +
    `fingerprint)`;
  if (!existsSync(keyPath)) {
    throw new Error(
      `${action}: the TLS certificate "${certPath}" has no key beside it, "${keyPath}": put ` +
        `back the key it was made with, ${replace("it")}`,
    );
  }
  checkSecretMode("the TLS key", keyPath, action);
  const identity = { cert: Deno.readTextFileSync(certPath), key: Deno.readTextFileSync(keyPath) };
  try {
    checkIdentity(identity.cert, identity.key, { cert: certPath, key: keyPath });
  } catch (error) {
    const message = (error as Error).message;
    throw new Error(
      `${action}: ${message}: ` +
        (/ is not the certificate's/.test(message)
          ? `put back the key it was made with, ${replace("both")}`
          : `${TLS_CERT_NAME} must hold a PEM certificate and ${TLS_KEY_NAME} its PEM private ` +
            `key (server init-tls makes both)`),
    );
  }
  return identity;
}

/**
 * Makes `root`'s identity, for the host names `names`; returns its fingerprint. An existing
 * one is kept: nodes pin it, so replacing it is the operator's explicit act.
 */
export async function initTlsIdentity(root: string, names = ["localhost"]): Promise<string> {
  const certPath = join(root, TLS_CERT_NAME);
  if (existsSync(certPath)) {
    throw new Error(
      `Cannot make TLS certificate: "${certPath}" exists already (its fingerprint is ` +
        `${await fingerprint(Deno.readTextFileSync(certPath))}): nodes pin it, so remove ` +
        `${TLS_CERT_NAME} and ${TLS_KEY_NAME} first only if you mean to replace it`,
    );
  }
  const { selfSigned } = await npmFirstUse<typeof import("./x509.ts")>(
    import(X509_MODULE.href),
    "@peculiar/x509",
  );
  const { cert, key } = await selfSigned(names);
  const write = (name: string, text: string, mode?: number) => {
    try {
      writeFileDurably(root, name, new TextEncoder().encode(text), mode);
    } catch (error) {
      // A key without its certificate is no identity: left, it would only puzzle. Nor is a
      // certificate renamed in place before its directory's sync failed: left, it would refuse
      // the rerun as one nodes pin. It is this run's: one there at the start refused the run.
      removeIfExists(join(root, TLS_KEY_NAME));
      removeIfExists(certPath);
      throw outOfRoomWriting(error, join(root, name), "init-tls");
    }
  };
  write(TLS_KEY_NAME, key, 0o600);
  // As add-node's key: the server runs as the root's owner, and could not read a key of 0600
  // another user made (it would stop at start).
  const other = unreadableByServer(root, join(root, TLS_KEY_NAME));
  if (other !== undefined) {
    removeIfExists(join(root, TLS_KEY_NAME));
    throw new Error(
      `Cannot make TLS certificate: "${root}" belongs to user ${other.owner}, and this runs as ` +
        `user ${other.user}: the server, running as the root's owner, could not read a key ` +
        `made here, so none was: run it as that user: sudo -u "#${other.owner}" ` +
        cliCommand("server init-tls", shellQuote(root)),
    );
  }
  // The certificate last: its presence is what says the identity is whole.
  write(TLS_CERT_NAME, cert);
  return await fingerprint(cert);
}
