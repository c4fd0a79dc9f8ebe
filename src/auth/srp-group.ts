// The SRP groups of RFC 5054 appendix A that we use, as values. N is a safe prime (N = 2q + 1)
// and g = 2 generates it; the 2048-bit group is the one secure-remote-password ships
// (its lib/params.js), the 1024-bit group is the one RFC 5054 appendix B's vectors use.

export interface SrpGroup {
  /** The size of N in bits, which names the group in RFC 5054 appendix A. */
  readonly bits: 1024 | 2048
  /** The safe prime modulus. */
  readonly N: bigint
  /** N as big-endian bytes: `byteLength` long, its first byte non-zero. Read it, never write to it. */
  readonly NBytes: Buffer
  /** The generator. */
  readonly g: bigint
  /** g as its shortest big-endian bytes (0x02): unpadded, as the package hashes it. */
  readonly gBytes: Buffer
  /** N's length in bytes: PAD() pads to it, and the wire carries A, B and v at it. */
  readonly byteLength: number
}

function group(bits: SrpGroup['bits'], hexN: string, g: number): SrpGroup {
  const NBytes = Buffer.from(hexN.replace(/\s+/g, ''), 'hex')
  if (NBytes.length * 8 !== bits || NBytes[0] === 0)
    throw new Error(`SRP group N must be ${bits} bits, got ${NBytes.length} bytes`)
  return {
    bits,
    N: BigInt(`0x${NBytes.toString('hex')}`),
    NBytes,
    g: BigInt(g),
    gBytes: Buffer.from([g]),
    byteLength: NBytes.length,
  }
}

/** RFC 5054 appendix A, the 1024-bit group, g = 2. */
export const RFC5054_1024: SrpGroup = group(
  1024,
  `EEAF0AB9 ADB38DD6 9C33F80A FA8FC5E8 60726187 75FF3C0B 9EA2314C
   9C256576 D674DF74 96EA81D3 383B4813 D692C6E0 E0D5D8E2 50B98BE4
   8E495C1D 6089DAD1 5DC7D7B4 6154D6B6 CE8EF4AD 69B15D49 82559B29
   7BCF1885 C529F566 660E57EC 68EDBC3C 05726CC0 2FD4CBF4 976EAA9A
   FD5138FE 8376435B 9FC61D2F C0EB06E3`,
  2,
)

/** RFC 5054 appendix A, the 2048-bit group, g = 2: secure-remote-password's group. */
export const RFC5054_2048: SrpGroup = group(
  2048,
  `AC6BDB41 324A9A9B F166DE5E 1389582F AF72B665 1987EE07 FC319294
   3DB56050 A37329CB B4A099ED 8193E075 7767A13D D52312AB 4B03310D
   CD7F48A9 DA04FD50 E8083969 EDB767B0 CF609517 9A163AB3 661A05FB
   D5FAAAE8 2918A996 2F0B93B8 55F97993 EC975EEA A80D740A DBF4FF74
   7359D041 D5C33EA7 1D281E44 6B14773B CA97B43A 23FB8016 76BD207A
   436C6481 F1D2B907 8717461A 5B9D32E6 88F87748 544523B5 24B0D57D
   5EA77A27 75D2ECFA 032CFBDB F52FB378 61602790 04E57AE6 AF874E73
   03CE5329 9CCC041C 7BC308D8 2A5698F3 A8D0C382 71AE35F8 E9DBFBB6
   94B5C803 D89F7AE4 35DE236D 525F5475 9B65E372 FCD68EF2 0FA7111F
   9E4AFF73`,
  2,
)
