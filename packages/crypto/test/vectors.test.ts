// Known-answer tests, typed in from the published texts (never fetched at test time).
import { describe, expect, it } from 'vitest';
import {
  dh,
  ed25519PublicKey,
  hkdf,
  open,
  seal,
  sign,
  verify,
  x25519PublicKey,
} from '../src/primitives.js';
import { extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

const hex = (text: string) => {
  const clean = text.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
};
const toHex = (bytes: Uint8Array) =>
  [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
const range = (from: number, to: number) =>
  Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('X25519 (RFC 7748)', () => {
  it('section 5.2: the two scalar multiplication vectors', () => {
    expect(
      toHex(
        dh(
          hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'),
          hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'),
        ),
      ),
    ).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
    expect(
      toHex(
        dh(
          hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'),
          hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493'),
        ),
      ),
    ).toBe('95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957');
  });

  it('section 5.2: iterated 1 and 1,000 times from k = u = 9', () => {
    let k: Uint8Array = hex('0900000000000000000000000000000000000000000000000000000000000000');
    let u: Uint8Array = k.slice();
    const results: string[] = [];
    for (let i = 1; i <= 1000; i++) {
      const next = dh(k, u);
      u = k;
      k = next;
      if (i === 1 || i === 1000) results.push(toHex(k));
    }
    expect(results).toEqual([
      '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079',
      '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51',
    ]);
  });

  it('section 6.1: Diffie-Hellman between Alice and Bob', () => {
    const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const b = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const aPub = x25519PublicKey(a);
    const bPub = x25519PublicKey(b);
    expect(toHex(aPub)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(bPub)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(toHex(dh(a, bPub))).toBe(k);
    expect(toHex(dh(b, aPub))).toBe(k);
  });

  it('refuses a low-order public key', () => {
    expect(() => dh(new Uint8Array(32).fill(1), new Uint8Array(32))).toThrow(/low order/);
  });
});

describe('Ed25519 (RFC 8032 section 7.1)', () => {
  const tests = [
    {
      name: 'TEST 1 (empty message)',
      secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      message: '',
      signature:
        'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    },
    {
      name: 'TEST 2 (one byte)',
      secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      message: '72',
      signature:
        '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    },
    {
      name: 'TEST 3 (two bytes)',
      secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
      public: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
      message: 'af82',
      signature:
        '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
    },
  ];
  for (const t of tests) {
    it(t.name, () => {
      const secret = hex(t.secret);
      expect(toHex(ed25519PublicKey(secret))).toBe(t.public);
      const signature = sign(secret, hex(t.message));
      expect(toHex(signature)).toBe(t.signature);
      expect(verify(hex(t.public), hex(t.message), signature)).toBe(true);
      const forged = signature.slice();
      forged[0]! ^= 1;
      expect(verify(hex(t.public), hex(t.message), forged)).toBe(false);
    });
  }
});

describe('HKDF-SHA256 (RFC 5869 appendix A)', () => {
  const cases = [
    {
      name: 'test case 1 (basic)',
      ikm: new Uint8Array(22).fill(0x0b),
      salt: range(0x00, 0x0c),
      info: range(0xf0, 0xf9),
      length: 42,
      prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5',
      okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    },
    {
      name: 'test case 2 (longer inputs and outputs)',
      ikm: range(0x00, 0x4f),
      salt: range(0x60, 0xaf),
      info: range(0xb0, 0xff),
      length: 82,
      prk: '06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244',
      okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
    },
    {
      name: 'test case 3 (zero-length salt and info)',
      ikm: new Uint8Array(22).fill(0x0b),
      salt: new Uint8Array(0),
      info: new Uint8Array(0),
      length: 42,
      prk: '19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04',
      okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(toHex(extract(sha256, c.ikm, c.salt))).toBe(c.prk);
      expect(toHex(hkdf(c.ikm, c.salt, c.info, c.length))).toBe(c.okm);
    });
  }
});

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha section A.3.1)', () => {
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const key = range(0x80, 0x9f);
  const nonce = range(0x40, 0x57);
  const ciphertext =
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e';
  const tag = 'c0875924c1c7987947deafd8780acf49';

  it('encrypts to the published ciphertext and tag', () => {
    expect(toHex(seal(key, nonce, plaintext, aad))).toBe(ciphertext + tag);
  });

  it('decrypts the published ciphertext and rejects a flipped bit', () => {
    const sealed = hex(ciphertext + tag);
    expect(open(key, nonce, sealed, aad)).toEqual(plaintext);
    const tampered = sealed.slice();
    tampered[5]! ^= 0x80;
    expect(() => open(key, nonce, tampered, aad)).toThrow(/authentication/);
    expect(() => open(key, nonce, sealed, hex('50515253c0c1c2c3c4c5c6c8'))).toThrow(
      /authentication/,
    );
  });
});
