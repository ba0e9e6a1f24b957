/**
 * The kubelet image credential provider exec API (credentialprovider.kubelet.k8s.io v1, and
 * v1beta1 for kubelets before 1.26): kubelet writes one CredentialProviderRequest to stdin and
 * reads one CredentialProviderResponse, in the same apiVersion, from stdout.
 */

export const API_GROUP = 'credentialprovider.kubelet.k8s.io';
export const API_VERSIONS = [`${API_GROUP}/v1`, `${API_GROUP}/v1beta1`] as const;
export type ApiVersion = (typeof API_VERSIONS)[number];

/** kubelet accepts exactly these; anything else makes it ignore the whole response. */
export type CacheKeyType = 'Image' | 'Registry' | 'Global';

export interface CredentialProviderRequest {
  apiVersion: ApiVersion;
  image: string;
  /** Only with tokenAttributes.serviceAccountTokenAudience in the kubelet's config (1.33+). */
  serviceAccountToken?: string;
  serviceAccountAnnotations: Record<string, string>;
}

export interface CredentialProviderResponse {
  kind: 'CredentialProviderResponse';
  apiVersion: ApiVersion;
  cacheKeyType: CacheKeyType;
  cacheDuration: string;
  auth: Record<string, { username: string; password: string }>;
}

/** The request is not one this plugin can answer; the message never contains the token. */
export class RequestError extends Error {
  override name = 'RequestError';
}

export const MAX_REQUEST_BYTES = 1 << 20;
const MAX_IMAGE = 4096;
const MAX_TOKEN = 16_384;
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const show = (v: unknown) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
};

export function parseRequest(text: string): CredentialProviderRequest {
  if (Buffer.byteLength(text, 'utf8') > MAX_REQUEST_BYTES) throw new RequestError('the request is larger than 1 MiB');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RequestError('the request on stdin is not JSON (expected a CredentialProviderRequest)');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new RequestError('the request is not a JSON object');
  const r = doc as Record<string, unknown>;
  if (!(API_VERSIONS as readonly unknown[]).includes(r.apiVersion)) {
    throw new RequestError(`unsupported apiVersion ${show(r.apiVersion)} (supported: ${API_VERSIONS.join(', ')})`);
  }
  if (r.kind !== 'CredentialProviderRequest') throw new RequestError(`kind is ${show(r.kind)}, expected "CredentialProviderRequest"`);
  if (typeof r.image !== 'string' || !r.image) throw new RequestError('the request names no image');
  if (r.image.length > MAX_IMAGE || /[\s\u0000-\u001f\u007f]/.test(r.image)) throw new RequestError('the image name is over-long or contains spaces or control characters');
  let serviceAccountToken: string | undefined;
  if (r.serviceAccountToken !== undefined && r.serviceAccountToken !== null && r.serviceAccountToken !== '') {
    // Checked for shape only; the signature is Berth's business, which has the cluster's keys.
    if (typeof r.serviceAccountToken !== 'string' || r.serviceAccountToken.length > MAX_TOKEN || !JWT.test(r.serviceAccountToken)) {
      throw new RequestError('serviceAccountToken is not a signed JWT');
    }
    serviceAccountToken = r.serviceAccountToken;
  }
  const annotations: Record<string, string> = {};
  if (r.serviceAccountAnnotations !== undefined && r.serviceAccountAnnotations !== null) {
    const a = r.serviceAccountAnnotations;
    if (typeof a !== 'object' || Array.isArray(a)) throw new RequestError('serviceAccountAnnotations is not an object');
    for (const [k, v] of Object.entries(a)) {
      if (typeof v !== 'string') throw new RequestError(`serviceAccountAnnotations[${show(k)}] is not a string`);
      annotations[k] = v;
    }
  }
  return { apiVersion: r.apiVersion as ApiVersion, image: r.image, ...(serviceAccountToken ? { serviceAccountToken } : {}), serviceAccountAnnotations: annotations };
}

/**
 * The registry part of an image reference, as kubelet and Docker read it: the first path
 * component when it looks like a host (has a dot or a port, or is localhost), else docker.io.
 */
export function imageRegistry(image: string): { host: string; path: string } {
  const slash = image.indexOf('/');
  const first = slash < 0 ? '' : image.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return { host: first.toLowerCase(), path: image.slice(slash + 1) };
  return { host: 'docker.io', path: image };
}

/** Go's time.Duration text, which metav1.Duration parses: whole seconds are enough here. */
export function goDuration(seconds: number): string {
  return `${Math.max(0, Math.floor(seconds))}s`;
}
