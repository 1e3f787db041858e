/**
 * A self-signed X.509 certificate for the backup server's TLS, made with @peculiar/x509.
 * Loaded only by `server init-tls` (tls_identity.ts), so nothing else fetches it.
 *
 * @module
 */
import "npm:reflect-metadata@0.2";
import * as x509 from "npm:@peculiar/x509@2";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const TEN_YEARS_MS = 3650 * 86_400_000;

/** A new ECDSA P-256 key and a certificate for it, both PEM; `names` (DNS) in its subjectAltName. */
export async function selfSigned(names: string[]): Promise<{ cert: string; key: string }> {
  x509.cryptoProvider.set(crypto);
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const serial = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b, i) => (i === 0 ? b & 0x7f : b).toString(16).padStart(2, "0"),
  ).join("");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: "CN=cln-backup server",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + TEN_YEARS_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension(
        names.map((value) => ({ type: "dns" as const, value })),
      ),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert: cert.toString("pem"), key: pem("PRIVATE KEY", pkcs8) };
}

function pem(label: string, der: Uint8Array): string {
  const base64 = btoa(String.fromCharCode(...der)).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}
