/** Usage text of every subcommand: printed by `berth CMD --help` (exit 0) and after a usage error. */
export const USAGES = {
  serve: `usage: berth serve [--config FILE] [--demo] [--watch-config]
  run the server; the config also comes from BERTH_CONFIG. --demo starts config/demo.yaml (or a
  FILE that says demo: true) with its local OpenID provider. SIGHUP or, with --watch-config,
  saving the file reloads it.`,
  keygen: `usage: berth keygen --out DIR [--alg ES256|RS256|EdDSA] [--force]
  write DIR/key.pem (mode 600) and DIR/cert.pem for token signing; give cert.pem to the registry
  as auth.token.rootcertbundle. Existing keys are kept unless --force: a registry that trusts
  the old certificate refuses every token signed with a new key.`,
  'hash-password': `usage: berth hash-password [--cost N] < password
  bcrypt a password read from stdin (cost 4..15, default 10); replaces htpasswd -nB.`,
  'check-config': `usage: berth check-config [FILE]
  validate a config file (default: BERTH_CONFIG); exit 1 listing every problem with its YAML path.`,
  acl: `usage: berth acl explain --config FILE --account A [--label k=v]... [--service S] [--ip IP] SCOPE...
  show which ACL rule decides each scope (e.g. repository:team-a/app:pull,push) and why;
  --account "" is the anonymous user.`,
  robot: `usage: berth robot <command> [--server URL] [--token PAT]   (or BERTH_URL, BERTH_TOKEN)
  list
  create NAME --repo PATTERN... --action pull|push|delete... [--description TEXT] [--expires-in-days N]
  rotate NAME | disable NAME | enable NAME | delete NAME
  secret                                 print a new secret and its sha256, for robots declared in config`,
  'oci-image': `usage: berth oci-image --out DIR [--tag TAG] [FILE...]
  write a one-layer OCI image layout holding FILEs (default: a hello.txt) into DIR, tagged TAG
  (default latest), for pushing without docker: skopeo copy oci:DIR:TAG docker://HOST/REPO:TAG`,
  'pull-secret': `usage: berth pull-secret --robot NAME --registry HOST[:PORT] [options] [--server URL] [--token PAT]
  rotate (or with --create, create) a robot through a running Berth and print a Kubernetes
  kubernetes.io/dockerconfigjson Secret holding its new secret: berth pull-secret … | kubectl apply -f -
  (see docs/kubernetes.md for the options and a CronJob that rotates it)`,
} as const;

export type Command = keyof typeof USAGES;

export const USAGE = `usage: berth <command>
  serve [--config FILE] [--demo] [--watch-config]
                                        run the server (config also from BERTH_CONFIG); SIGHUP or,
                                        with --watch-config, saving the file reloads it
  keygen --out DIR [--alg ES256|RS256|EdDSA] [--force]
                                        write key.pem + cert.pem for token signing
  hash-password [--cost N]              bcrypt a password read from stdin (htpasswd -nB replacement)
  check-config FILE                     validate a config file; exit 1 with every problem
  acl explain --config FILE --account A [--label k=v]... [--service S] [--ip IP] SCOPE...
                                        show which ACL rule decides each scope
  robot list|create|rotate|disable|enable|delete|secret ...
                                        manage robot accounts through a running server (admins)
  oci-image --out DIR [--tag TAG] [FILE...]
                                        write a one-layer OCI image for skopeo (no docker needed)
  pull-secret --robot NAME --registry HOST [--namespace NS] ...
                                        rotate a robot and print a Kubernetes image pull Secret
every command answers --help`;

/** `--help` or `-h` among the arguments (before a `--` that ends the options). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
