import { spawn } from 'node:child_process';

export interface BinRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a compiled bin as a kubelet (or docker) runs a plugin: argv, the request on stdin, a bare environment. */
export function runBin(bin: string, args: string[], stdin: string | Buffer, env: Record<string, string> = {}): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}
