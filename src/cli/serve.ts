import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../app/load-config.js';
import { startServer } from '../server.js';
import { startDemoProvider } from '../demo/run-demo.js';
import { UsageError } from './args.js';

export const DEMO_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));

/** `berth serve`: runs until SIGTERM/SIGINT, then stops accepting and finishes in-flight requests. */
export async function serve(opts: { configPath: string | undefined; demo: boolean; watch?: boolean }): Promise<number> {
  const path = opts.configPath ?? (opts.demo ? DEMO_CONFIG : undefined);
  if (!path) throw new UsageError('serve needs --config FILE (or BERTH_CONFIG), or --demo for the built-in demo');
  const config = await loadConfigFile(path);
  // The demo identity provider accepts fixed passwords: it must never start from a production
  // config by accident, so both the file and the command line have to ask for it.
  if (config.raw.demo && !opts.demo) throw new UsageError(`${path} sets demo: true; start it with --demo if that is really what you want`);
  const running = await startServer(config);
  const devProvider = config.raw.demo ? await startDemoProvider(config, running.publicURL) : null;
  if (devProvider) {
    process.stdout.write(`demo OpenID provider on ${devProvider.issuer} (accounts: alice/alice in group platform, bob/bob in group team-a; static user admin/demo administers robot accounts)\n`);
  }
  if (running.certificatePath) process.stdout.write(`registry rootcertbundle: ${running.certificatePath}\n`);
  process.stdout.write(`berth listening on ${running.url} (token endpoint ${running.url}${config.token.path})\n`);
  if (config.raw.demo) process.stdout.write(`open ${running.publicURL}/ in a browser to sign in and create a token\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    running.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    Promise.all([running.close(), devProvider?.close()]).then(() => {
      running.log.flush();
      process.exit(0);
    });
  };
  // SIGHUP (or a saved file with --watch-config): re-read the file; a broken file is reported and
  // the running configuration stays.
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      try {
        await running.reload(await loadConfigFile(path));
      } catch (e) {
        running.log.error({ err: (e as Error).message }, 'configuration reload failed; keeping the running configuration');
      }
    });
  };
  process.on('SIGHUP', reload);
  if (opts.watch) {
    // Editors and config management replace the file rather than write it in place, so the
    // directory is watched; bursts of events are coalesced into one reload.
    let timer: NodeJS.Timeout | undefined;
    watch(dirname(resolve(path)), (_event, name) => {
      if (name !== basename(path)) return;
      clearTimeout(timer);
      timer = setTimeout(reload, 200);
    }).unref();
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1;
}
