import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameError, FrameReader } from '../src/framing.js';

function header(len: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(len, 0);
  return b;
}

function raw(payload: string | Buffer): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([header(p.length), p]);
}

function thrown(fn: () => unknown): FrameError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FrameError);
    return e as FrameError;
  }
  throw new Error('expected a FrameError');
}

describe('encodeFrame', () => {
  it('writes a 4-byte big-endian length then UTF-8 JSON', () => {
    const f = encodeFrame({ a: 'é' });
    const json = '{"a":"é"}';
    expect(f.readUInt32BE(0)).toBe(Buffer.byteLength(json));
    expect(f.subarray(4).toString('utf8')).toBe(json);
  });

  it('refuses values over the maximum (counted in bytes) and non-JSON values', () => {
    expect(encodeFrame('x'.repeat(8), 10).length).toBe(14); // "xxxxxxxx" is 10 bytes
    expect(thrown(() => encodeFrame('x'.repeat(9), 10)).code).toBe('FRAME_TOO_LARGE');
    expect(thrown(() => encodeFrame('éééé', 9)).code).toBe('FRAME_TOO_LARGE'); // 10 bytes
    expect(thrown(() => encodeFrame(undefined)).code).toBe('BAD_FRAME');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(thrown(() => encodeFrame(cyclic)).code).toBe('BAD_FRAME');
    expect(thrown(() => encodeFrame(1n)).code).toBe('BAD_FRAME');
  });

  it('defaults to 16 MiB', () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(16 * 1024 * 1024);
    expect(new FrameReader().maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
  });
});

describe('FrameReader', () => {
  const values: unknown[] = [{ op: 'hello', n: 1 }, [1, 2, 3], 'text with ünïcode ✓', null, 42, { nested: { deep: [true, false] } }];
  const stream = Buffer.concat(values.map((v) => encodeFrame(v)));

  it('decodes frames merged into one chunk', () => {
    expect(new FrameReader().push(stream)).toEqual(values);
  });

  it('decodes frames split byte by byte and at every split point', () => {
    const r = new FrameReader();
    const out: unknown[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...r.push(stream.subarray(i, i + 1)));
    expect(out).toEqual(values);
    expect(r.bufferedBytes).toBe(0);

    for (let cut = 0; cut <= stream.length; cut++) {
      const r2 = new FrameReader();
      expect([...r2.push(stream.subarray(0, cut)), ...r2.push(stream.subarray(cut))]).toEqual(values);
    }
  });

  it('decodes across irregular chunks, including a header split over chunks', () => {
    const r = new FrameReader();
    const out: unknown[] = [];
    let i = 0;
    for (const size of [1, 2, 7, 3, 50, 1, 1, 1, 1000]) {
      out.push(...r.push(stream.subarray(i, i + size)));
      i += size;
    }
    expect(out).toEqual(values);
  });

  it('holds an incomplete frame until the rest arrives', () => {
    const r = new FrameReader();
    const f = encodeFrame({ k: 'v' });
    expect(r.push(f.subarray(0, 6))).toEqual([]);
    expect(r.bufferedBytes).toBe(2);
    expect(r.push(f.subarray(6))).toEqual([{ k: 'v' }]);
  });

  it('rejects an oversize declared length from the header alone, before buffering the payload', () => {
    const r = new FrameReader({ maxFrameBytes: 100 });
    expect(r.push(raw('x'.repeat(98).replace(/^x|x$/g, '"')))).toHaveLength(1); // exactly 98 bytes is fine
    const e = thrown(() => r.push(header(101)));
    expect(e.code).toBe('FRAME_TOO_LARGE');
    expect(r.bufferedBytes).toBe(0);
    // The reader is failed for good: the stream has lost its framing.
    expect(thrown(() => r.push(raw('1'))).code).toBe('FRAME_TOO_LARGE');

    // A 4 GiB declaration on a default reader fails immediately too.
    expect(thrown(() => new FrameReader().push(Buffer.from([0xff, 0xff, 0xff, 0xff]))).code).toBe('FRAME_TOO_LARGE');
  });

  it('rejects garbage: invalid JSON, empty payloads, invalid UTF-8', () => {
    expect(thrown(() => new FrameReader().push(raw('{not json'))).code).toBe('BAD_FRAME');
    expect(thrown(() => new FrameReader().push(raw(''))).code).toBe('BAD_FRAME');
    expect(thrown(() => new FrameReader().push(raw(Buffer.from([0x22, 0xff, 0xfe, 0x22])))).code).toBe('BAD_FRAME');
    // Garbage after good frames: the good ones are not returned from the failing push, the error is.
    const r = new FrameReader();
    expect(thrown(() => r.push(Buffer.concat([encodeFrame(1), raw('}{')]))).code).toBe('BAD_FRAME');
    // Random bytes typically declare a huge length.
    expect(thrown(() => new FrameReader().push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).code).toBe('FRAME_TOO_LARGE');
  });

  it('validates maxFrameBytes', () => {
    expect(() => new FrameReader({ maxFrameBytes: 0 })).toThrow(RangeError);
    expect(() => encodeFrame(1, 2 ** 33)).toThrow(RangeError);
  });
});
