/**
 * The FUSE kernel protocol's encoding (src/lazy/fuse-protocol.ts), field by field against the
 * layouts of Linux's include/uapi/linux/fuse.h. The same code runs against the real kernel in
 * test/integration/lazy/fuse-session.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  attrReply,
  direntsReply,
  entryReply,
  errorReply,
  FuseOp,
  InitFlag,
  InitFlag2,
  initReply,
  nameArg,
  OpenFlag,
  openReply,
  parseRequest,
  readArgs,
  type FuseAttr,
} from '../../../src/lazy/fuse-protocol.js';

function request(opcode: number, unique: bigint, nodeid: number, body: Buffer): Buffer {
  const msg = Buffer.alloc(40 + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt32LE(opcode, 4);
  msg.writeBigUInt64LE(unique, 8);
  msg.writeBigUInt64LE(BigInt(nodeid), 16);
  msg.writeUInt32LE(1000, 24);
  msg.writeUInt32LE(1001, 28);
  msg.writeUInt32LE(4242, 32);
  body.copy(msg, 40);
  return msg;
}

/** The INIT request's body (`struct fuse_init_in`) of a kernel speaking 7.`minor`. */
function initIn(minor: number, flags: number, flags2 = 0): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0);
  b.writeUInt32LE(minor, 4);
  b.writeUInt32LE(128 * 1024, 8);
  b.writeUInt32LE(flags >>> 0, 12);
  b.writeUInt32LE(flags2, 16);
  return b;
}

const attr: FuseAttr = { ino: 7, size: 5_000_000_000, blocks: 9_765_625, mode: 0o100644, nlink: 1, uid: 10, gid: 20, blksize: 4096, mtime: 1_700_000_000 };

describe('FUSE protocol', () => {
  it('parses a request header and its arguments, and refuses a truncated one', () => {
    const name = Buffer.from('libjvm.so\0');
    const r = parseRequest(request(FuseOp.LOOKUP, 0x1_0000_0001n, 3, name));
    expect(r).toMatchObject({ opcode: FuseOp.LOOKUP, unique: 0x1_0000_0001n, nodeid: 3, uid: 1000, gid: 1001, pid: 4242 });
    expect(nameArg(r.body)).toBe('libjvm.so');

    const read = Buffer.alloc(40);
    read.writeBigUInt64LE(9n, 0);
    read.writeBigUInt64LE(3_000_000_000n, 8);
    read.writeUInt32LE(1 << 20, 16);
    expect(readArgs(parseRequest(request(FuseOp.READ, 5n, 7, read)).body)).toEqual({ fh: 9, offset: 3_000_000_000, size: 1 << 20 });

    expect(() => parseRequest(Buffer.alloc(20))).toThrow(/shorter than its header/);
    const lying = request(FuseOp.GETATTR, 1n, 1, Buffer.alloc(16));
    lying.writeUInt32LE(100, 0);
    expect(() => parseRequest(lying)).toThrow(/says 100 bytes, 56 were read/);
  });

  it('encodes replies with their length, error and unique in the out header', () => {
    const e = errorReply(77n, -2);
    expect(e.length).toBe(16);
    expect([e.readUInt32LE(0), e.readInt32LE(4), e.readBigUInt64LE(8)]).toEqual([16, -2, 77n]);

    const a = attrReply(8n, attr, 3600);
    expect(a.readUInt32LE(0)).toBe(a.length);
    expect(a.length).toBe(16 + 16 + 88);
    expect(a.readBigUInt64LE(16)).toBe(3600n); // attr_valid
    const at = 32;
    expect(a.readBigUInt64LE(at)).toBe(7n); // ino
    expect(a.readBigUInt64LE(at + 8)).toBe(5_000_000_000n); // size above 4 GiB
    expect(a.readBigUInt64LE(at + 32)).toBe(1_700_000_000n); // mtime
    expect(a.readUInt32LE(at + 60)).toBe(0o100644); // mode
    expect([a.readUInt32LE(at + 68), a.readUInt32LE(at + 72), a.readUInt32LE(at + 80)]).toEqual([10, 20, 4096]);
  });

  it('a lookup of a missing name is a negative entry the kernel may keep, not an error', () => {
    const neg = entryReply(3n, undefined, 3600);
    expect(neg.readInt32LE(4)).toBe(0);
    expect(neg.readBigUInt64LE(16)).toBe(0n); // nodeid 0: "does not exist"
    expect(neg.readBigUInt64LE(32)).toBe(3600n); // entry_valid
    const pos = entryReply(4n, attr, 60);
    expect(pos.readBigUInt64LE(16)).toBe(7n);
    expect(pos.readBigUInt64LE(16 + 40)).toBe(7n); // attr.ino
  });

  it('lists a directory from an offset, each entry padded to 8 bytes, as many as fit', () => {
    const entries = [
      { name: '.', ino: 1, mode: 0o040755 },
      { name: '..', ino: 1, mode: 0o040755 },
      { name: 'a-long-file-name.txt', ino: 12, mode: 0o100644 },
      { name: 'ln', ino: 13, mode: 0o120777 },
    ];
    const all = direntsReply(1n, entries, 0, 4096);
    // 24-byte header + name, rounded up to 8: 32, 32, 48, 32.
    expect(all.length).toBe(16 + 32 + 32 + 48 + 32);
    const third = 16 + 64;
    expect(all.readBigUInt64LE(third)).toBe(12n);
    expect(all.readBigUInt64LE(third + 8)).toBe(3n); // off: where the next read starts
    expect(all.readUInt32LE(third + 16)).toBe(20);
    expect(all.readUInt32LE(third + 20)).toBe(8); // DT_REG
    expect(all.toString('utf8', third + 24, third + 44)).toBe('a-long-file-name.txt');
    expect(all.readUInt32LE(16 + 64 + 48 + 20)).toBe(10); // DT_LNK

    const rest = direntsReply(1n, entries, 3, 4096);
    expect(rest.length).toBe(16 + 32);
    expect(rest.toString('utf8', 16 + 24, 16 + 26)).toBe('ln');
    // Only whole entries: 70 bytes hold the first two.
    expect(direntsReply(1n, entries, 0, 70).length).toBe(16 + 64);
    expect(direntsReply(1n, entries, 4, 4096).length).toBe(16);
  });

  it('negotiates INIT: wants only what the kernel offers, passthrough only when offered and asked for', () => {
    expect(() => initReply(1n, initIn(30, 0), { maxPages: 256, passthrough: true })).toThrow(/7\.30.*7\.31 or later/);

    const offered = InitFlag.ASYNC_READ | InitFlag.MAX_PAGES | InitFlag.INIT_EXT | (1 << 16); // writeback cache: not wanted
    const plain = initReply(2n, initIn(38, offered, InitFlag2.PASSTHROUGH), { maxPages: 256, passthrough: false });
    expect(plain.passthrough).toBe(false);
    const out = plain.reply;
    expect(out.length).toBe(16 + 64);
    expect([out.readUInt32LE(16), out.readUInt32LE(20)]).toEqual([7, 38]);
    expect(out.readUInt32LE(28)).toBe(InitFlag.ASYNC_READ | InitFlag.MAX_PAGES);
    expect(out.readUInt16LE(16 + 28)).toBe(256); // max_pages
    expect(out.readUInt32LE(16 + 32)).toBe(0); // flags2
    // A newer kernel is answered in the newest version known here.
    expect(initReply(3n, initIn(44, offered), { maxPages: 32, passthrough: false }).reply.readUInt32LE(20)).toBe(40);

    const agreed = initReply(4n, initIn(40, offered, InitFlag2.PASSTHROUGH), { maxPages: 256, passthrough: true });
    expect(agreed.passthrough).toBe(true);
    expect(agreed.reply.readUInt32LE(28) & InitFlag.INIT_EXT).toBe(InitFlag.INIT_EXT);
    expect(agreed.reply.readUInt32LE(16 + 32)).toBe(InitFlag2.PASSTHROUGH);
    expect(agreed.reply.readUInt32LE(16 + 36)).toBe(1); // max_stack_depth

    // Not offered (an older kernel, or no CAP_SYS_ADMIN), or flags2 absent before 7.36.
    expect(initReply(5n, initIn(40, offered, 0), { maxPages: 256, passthrough: true }).passthrough).toBe(false);
    expect(initReply(6n, initIn(35, offered, InitFlag2.PASSTHROUGH), { maxPages: 256, passthrough: true }).passthrough).toBe(false);
  });

  it('an open reply names its backing file for passthrough', () => {
    const served = openReply(9n, 5, OpenFlag.KEEP_CACHE);
    expect([served.readBigUInt64LE(16), served.readUInt32LE(24), served.readInt32LE(28)]).toEqual([5n, OpenFlag.KEEP_CACHE, 0]);
    const passed = openReply(9n, 6, 0, 3);
    expect([passed.readUInt32LE(24), passed.readInt32LE(28)]).toEqual([OpenFlag.PASSTHROUGH, 3]);
  });
});
