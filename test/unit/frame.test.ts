import { describe, expect, it } from 'vitest'
import { FrameDecoder, MAX_FRAME_BYTES, encodeFrame } from '../../src/protocol/frame.js'

describe('frame codec', () => {
  it('round-trips one message', () => {
    const decoder = new FrameDecoder()
    expect(decoder.push(encodeFrame({ type: 'login_otp', code: '123456' }))).toEqual([
      { type: 'login_otp', code: '123456' },
    ])
    expect(decoder.pending).toBe(0)
  })

  it('writes a 4-byte big-endian length before the UTF-8 JSON', () => {
    const frame = encodeFrame({ a: 'é' })
    expect(frame.readUInt32BE(0)).toBe(Buffer.byteLength('{"a":"é"}'))
    expect(frame.subarray(4).toString('utf8')).toBe('{"a":"é"}')
  })

  it('reassembles a frame split at every byte', () => {
    const frame = encodeFrame({ type: 'x', n: 42 })
    const decoder = new FrameDecoder()
    const out: unknown[] = []
    for (const byte of frame) out.push(...decoder.push(Buffer.from([byte])))
    expect(out).toEqual([{ type: 'x', n: 42 }])
  })

  it('splits frames joined in one chunk, keeping a partial tail', () => {
    const joined = Buffer.concat([encodeFrame({ n: 1 }), encodeFrame({ n: 2 }), encodeFrame({ n: 3 }).subarray(0, 6)])
    const decoder = new FrameDecoder()
    expect(decoder.push(joined)).toEqual([{ n: 1 }, { n: 2 }])
    expect(decoder.pending).toBe(6)
    expect(decoder.push(encodeFrame({ n: 3 }).subarray(6))).toEqual([{ n: 3 }])
  })

  it('refuses a body that starts with a UTF-8 byte order mark (RFC 8259 8.1: a sender must not add one)', () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"type":"jwks_get"}')])
    const frame = Buffer.concat([Buffer.alloc(4), body])
    frame.writeUInt32BE(body.length, 0)
    expect(() => new FrameDecoder().push(frame)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
  })

  it('accepts a frame of exactly 64 KiB', () => {
    const body = Buffer.from(JSON.stringify('x'.repeat(MAX_FRAME_BYTES - 2)))
    expect(body.length).toBe(MAX_FRAME_BYTES)
    const frame = Buffer.concat([Buffer.alloc(4), body])
    frame.writeUInt32BE(body.length, 0)
    expect(new FrameDecoder().push(frame)).toHaveLength(1)
  })

  it('refuses an oversize length from its header alone, before the body arrives', () => {
    const head = Buffer.alloc(4)
    head.writeUInt32BE(MAX_FRAME_BYTES + 1, 0)
    expect(() => new FrameDecoder().push(head)).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }))
  })

  it('refuses to encode an oversize message', () => {
    expect(() => encodeFrame({ big: 'x'.repeat(MAX_FRAME_BYTES) })).toThrow(
      expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }),
    )
  })

  it.each([
    ['not JSON', Buffer.from('{nope')],
    ['invalid UTF-8', Buffer.from([0x22, 0xff, 0xfe, 0x22])],
  ])('refuses a body that is %s', (_name, body) => {
    const frame = Buffer.concat([Buffer.alloc(4), body])
    frame.writeUInt32BE(body.length, 0)
    expect(() => new FrameDecoder().push(frame)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
  })
})
