import { HostpullError } from '../errors.js';

/**
 * Asks for one line on the terminal: the question on stderr (stdout stays for the command's
 * output), the answer from stdin, which must be a TTY. With `hidden`, what is typed is not echoed
 * (a password); backspace edits, Ctrl-C and Ctrl-D end the command.
 */
export function promptLine(question: string, options: { hidden?: boolean } = {}): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new HostpullError('USAGE', `${question.replace(/:\s*$/, '')} is needed and stdin is not a terminal`);
  // Raw mode before the question shows: an answer typed (or pasted) the moment it appears must
  // not be echoed by the terminal's own line discipline.
  stdin.setRawMode(true);
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let answer = '';
    const done = (err?: HostpullError) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(answer);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new HostpullError('ABORTED', 'no answer given'));
        if (ch === '\u007f' || ch === '\b') {
          if (answer.length > 0) {
            answer = answer.slice(0, -1);
            if (!options.hidden) process.stderr.write('\b \b');
          }
          continue;
        }
        answer += ch;
        if (!options.hidden) process.stderr.write(ch);
      }
    };
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** All of stdin as text, without the one line end a shell's `echo` or a file adds. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}
