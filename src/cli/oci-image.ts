import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeDir } from '../util/make-dir.js';
import { CliError, UsageError } from './args.js';

/**
 * `berth oci-image`: a one-layer OCI image layout written by hand, so that the README's walk-through
 * needs neither docker nor buildah: `skopeo copy oci:DIR:TAG docker://…` pushes it. The output is
 * reproducible (fixed mtimes, no timestamps), so the same files give the same digests.
 */

const BLOCK = 512;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const DEFAULT_CONTENT = 'hello from berth\n';

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const octal = (value: number, width: number) => value.toString(8).padStart(width - 1, '0') + '\0';

/** One ustar header block for a regular file, owned by root, mode 644. */
function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // the checksum field counts as spaces while summing
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/**
 * A tar archive of regular files, ending with the two zero blocks tar readers expect. mtime 0 keeps
 * `berth oci-image` reproducible; the e2e tests' images pass the current time.
 */
export function tarFiles(files: { name: string; content: Buffer }[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > 100) throw new Error(`tar name longer than 100 bytes: ${f.name}`);
    parts.push(tarHeader(f.name, f.content.length, mtime), f.content);
    const pad = (BLOCK - (f.content.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

/** Reads the FILE arguments; each lands at the image's root under its base name. */
export function readImageFiles(paths: string[]): { name: string; content: Buffer }[] {
  if (paths.length === 0) return [{ name: 'hello.txt', content: Buffer.from(DEFAULT_CONTENT) }];
  const seen = new Set<string>();
  return paths.map((p) => {
    const name = basename(p);
    if (Buffer.byteLength(name) > 100) throw new UsageError(`${p}: file names in the image are limited to 100 bytes`);
    if (seen.has(name)) throw new UsageError(`two files named ${name}: each lands at the image's root`);
    seen.add(name);
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      throw new CliError(`cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!st.isFile()) throw new CliError(`${p} is not a regular file`);
    return { name, content: readFileSync(p) };
  });
}

interface IndexJson {
  schemaVersion: number;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

/**
 * Writes (or adds a tag to) an OCI layout in dir. Refuses a dir that is a file or a non-empty
 * directory that is not an OCI layout, so that a typo never litters someone's home directory.
 */
export function writeOciImage(dir: string, tag: string, files: { name: string; content: Buffer }[]): { manifestDigest: string } {
  if (!TAG.test(tag)) throw new UsageError(`--tag ${JSON.stringify(tag)}: a tag is letters, digits, "_", "." and "-", at most 128, not starting with "." or "-"`);
  let index: IndexJson = { schemaVersion: 2, manifests: [] };
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new CliError(`${dir} exists and is not a directory`);
    if (existsSync(join(dir, 'oci-layout'))) {
      try {
        index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as IndexJson;
        if (!Array.isArray(index.manifests)) throw new Error('no manifests list');
      } catch (e) {
        throw new CliError(`${dir} holds an OCI layout whose index.json is unreadable (${(e as Error).message}); choose another --out`);
      }
    } else if (readdirSync(dir).length > 0) throw new CliError(`${dir} is a non-empty directory and not an OCI layout; choose another --out`);
  }
  try {
    makeDir(join(dir, 'blobs', 'sha256'));
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const blob = (data: Buffer | string) => {
    const digest = sha256(data);
    writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { digest, size: Buffer.byteLength(data) };
  };
  const layerTar = tarFiles(files);
  // Fixed gzip header (mtime 0): the same files give the same layer digest on every run.
  const layer = blob(gzipSync(layerTar, { level: 9 }));
  const config = blob(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
      history: [{ created_by: `berth oci-image ${files.map((f) => f.name).join(' ')}` }],
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  const annotations = { 'org.opencontainers.image.ref.name': tag };
  index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag);
  index.manifests.push({ mediaType: MANIFEST_TYPE, ...manifest, annotations });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  return { manifestDigest: manifest.digest };
}
