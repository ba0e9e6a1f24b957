import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText, type Config } from '../../src/app/load-config.js';
import { answer, parseSettings } from '../../src/kubelet-credential-provider/plugin.js';
import { parseScopes } from '../../src/policy/scope.js';
import { writeKeyPair } from '../../src/tokens/keygen.js';
import { ROOT } from '../helpers/build.js';
import { startClusterIssuer, type ClusterIssuer } from '../helpers/cluster-issuer.js';

// docs/kubernetes.md walks an admin through configs: every YAML block in it is loaded here, the
// Berth config by Berth's loader, the kubelet's config through the plugin's own argument parser,
// and the Kubernetes objects checked for the names that must agree with each other.

type Doc = Record<string, unknown> & { kind?: string; apiVersion?: string };
const markdown = readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8');
const blocks = [...markdown.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const docs = blocks.flatMap((b) => yaml.loadAll(b) as Doc[]);
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);

let keys: string;
let cluster: ClusterIssuer;
let berth: Config;

beforeAll(async () => {
  keys = mkdtempSync(join(tmpdir(), 'berth-k8s-docs-'));
  const { certPath } = await writeKeyPair(keys, 'ES256');
  writeFileSync(join(keys, 'edge-cluster-jwks.json'), JSON.stringify({ keys: [createPublicKey(readFileSync(certPath)).export({ format: 'jwk' })] }));
  cluster = await startClusterIssuer();
  const berthBlocks = blocks.filter((b) => /^federation:/m.test(b));
  expect(berthBlocks).toHaveLength(1);
  berth = await loadConfigText(berthBlocks[0]!.replaceAll('/etc/berth/keys', keys), keys);
});

afterAll(async () => {
  await cluster?.close();
  rmSync(keys, { recursive: true, force: true });
});

describe('docs/kubernetes.md', () => {
  it('every YAML block parses, and every Kubernetes object names its kind and apiVersion', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const d of docs.filter((x) => !('federation' in x))) {
      expect(typeof d.apiVersion, JSON.stringify(d).slice(0, 80)).toBe('string');
      expect(typeof d.kind).toBe('string');
    }
  });

  it('the Berth config loads, and its ACL lets a namespace pull its own images only', () => {
    const decide = (account: string, ns: string, scope: string) => berth.acl.decide({ account, labels: { 'k8s-namespace': [ns] }, service: '', ip: null }, parseScopes([scope]))[0]!.granted;
    expect(decide('k8s-prod:team-a/default', 'team-a', 'repository:team-a/web:pull')).toEqual(['pull']);
    expect(decide('k8s-prod:team-a/default', 'team-a', 'repository:team-b/web:pull')).toEqual([]);
    expect(decide('k8s-prod:team-a/default', 'team-a', 'repository:team-a/web:push')).toEqual([]);
  });

  it('the kubelet CredentialProviderConfig runs the plugin with arguments it accepts, agreeing with the Berth config', async () => {
    const [cpc] = byKind('CredentialProviderConfig') as unknown as { apiVersion: string; providers: { name: string; apiVersion: string; matchImages: string[]; defaultCacheDuration: string; args: string[]; tokenAttributes: { serviceAccountTokenAudience: string; cacheType: string; requireServiceAccount: boolean } }[] }[];
    expect(cpc!.apiVersion).toBe('kubelet.config.k8s.io/v1');
    const p = cpc!.providers[0]!;
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(Object.keys(pkg.bin)).toContain(p.name);
    expect(p.apiVersion).toBe('credentialprovider.kubelet.k8s.io/v1');
    expect(p.defaultCacheDuration).toMatch(/^\d+[smh]$/);
    expect(['Token', 'ServiceAccount']).toContain(p.tokenAttributes.cacheType);
    const settings = parseSettings(p.args);
    expect(settings.registries).toEqual(p.matchImages);
    // The policy named by --user exists and expects the audience kubelet asks tokens for.
    const policy = berth.raw.federation.find((f) => f.id === settings.user)!;
    expect(policy.audience).toContain(p.tokenAttributes.serviceAccountTokenAudience);
    expect(settings.audience).toBe(p.tokenAttributes.serviceAccountTokenAudience);
    // And the plugin, so configured, answers a pod's request for an image the config matches.
    const token = await cluster.mint({ namespace: 'team-a' }, p.tokenAttributes.serviceAccountTokenAudience);
    const r = answer(JSON.stringify({ apiVersion: p.apiVersion, kind: 'CredentialProviderRequest', image: `${p.matchImages[0]}/team-a/web:1.4.2`, serviceAccountToken: token }), settings, Date.now() / 1000);
    expect(r.auth[p.matchImages[0]!]).toEqual({ username: settings.user, password: token });
  });

  it('the pod pulls from the registry the plugin is configured for; the rotation objects agree on names', () => {
    const [pod] = byKind('Pod') as unknown as { metadata: { namespace: string }; spec: { containers: { image: string }[] } }[];
    expect(pod!.spec.containers[0]!.image.startsWith(`${parseSettings((byKind('CredentialProviderConfig')[0] as unknown as { providers: { args: string[] }[] }).providers[0]!.args).registries[0]}/${pod!.metadata.namespace}/`)).toBe(true);
    const [job] = byKind('CronJob') as unknown as { spec: { jobTemplate: { spec: { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } } } } }[];
    const podSpec = job!.spec.jobTemplate.spec.template.spec;
    expect(byKind('ServiceAccount').map((s) => (s.metadata as { name: string }).name)).toContain(podSpec.serviceAccountName);
    const command = podSpec.containers[0]!.args[0]!;
    const robot = /--robot (\S+)/.exec(command)![1]!;
    const [role] = byKind('Role') as unknown as { rules: { resourceNames?: string[] }[] }[];
    // `berth pull-secret` names the Secret berth-pull-ROBOT: the Role must allow exactly that one.
    expect(role!.rules[0]!.resourceNames).toEqual([`berth-pull-${robot}`]);
  });
});
