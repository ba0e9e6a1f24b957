import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarFiles as writeTar } from '../../src/cli/oci-image.js';

export interface OciImage {
  /** An OCI image layout directory, usable as skopeo's `oci:DIR`. */
  dir: string;
  manifestDigest: string;
  layerDigest: string;
  /** The compressed layer blob exactly as written. */
  layerBytes: Buffer;
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The product's tar writer (`berth oci-image`), with the current time as mtime. */
export function tarFiles(files: { name: string; content: Buffer }[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  return writeTar(files, mtime);
}

function writeBlob(dir: string, data: Buffer | string): { digest: string; size: number } {
  const digest = sha256(data);
  writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: Buffer.byteLength(data) };
}

/**
 * Builds a one-layer OCI image layout by hand. The file content is random, so every image (and every
 * layer and manifest digest) differs and pushes never dedupe against earlier tests.
 */
export function buildOciImage(opts: { tag?: string; fileSize?: number } = {}): OciImage {
  const dir = mkdtempSync(join(tmpdir(), 'berth-oci-'));
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const tar = tarFiles([
    { name: 'hello.txt', content: Buffer.from(`hello from berth ${randomBytes(8).toString('hex')}\n`) },
    { name: 'random.bin', content: randomBytes(opts.fileSize ?? 4096) },
  ]);
  const layerBytes = gzipSync(tar);
  const layer = writeBlob(dir, layerBytes);

  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/hello.txt'] },
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
    history: [{ created_by: 'berth test helper' }],
  });
  const configBlob = writeBlob(dir, config);

  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: configBlob.size },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
  });
  const manifestBlob = writeBlob(dir, manifest);

  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestBlob.digest,
          size: manifestBlob.size,
          annotations: { 'org.opencontainers.image.ref.name': opts.tag ?? 'latest' },
        },
      ],
    }),
  );
  return { dir, manifestDigest: manifestBlob.digest, layerDigest: layer.digest, layerBytes };
}
