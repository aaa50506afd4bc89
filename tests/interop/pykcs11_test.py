"""pykcs11_test.py - PyKCS11 against the Nimbus module (run by
tests/interop/pykcs11.sh).

    python3 pykcs11_test.py MODULE USER PASSWORD WORKDIR

A wrong PIN is refused (CKR_PIN_INCORRECT); after the login: RSA-2048 and
EC P-256 key pairs generated on the token; SHA256-RSA-PKCS, SHA256-RSA-PSS
and ECDSA-SHA256 signatures made on the token, verified on the token and by
openssl with a SubjectPublicKeyInfo built from the public key's attributes;
an AES-256 key generated on the token with an AES-GCM round trip (AAD, a
changed tag refused, multi-part decryption through the binding's
C_DecryptUpdate/C_DecryptFinal), and AES-GCM on a key of known bytes against a
published test vector, both ways; attributes read back (class, key type, label, id,
modulus bits, EC parameters, sensitive and local flags, value refused for a
sensitive key); after logout no private key is found.
Prints "ok: ..." or "FAIL: ..." per check; exits 1 if any failed.
"""
import os
import subprocess
import sys

import PyKCS11
from PyKCS11 import LowLevel

FAILURES = 0


def ok(what):
    print("ok: " + what)


def check(cond, what, detail=None):
    global FAILURES
    if cond:
        ok(what)
    else:
        FAILURES += 1
        print("FAIL: pykcs11: " + what)
        if detail:
            print("    | " + str(detail))


def ckr_name(err):
    return PyKCS11.CKR.get(err.value, hex(err.value))


# ---------------------------------------------------------------- DER
def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def der_int(v):
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return der(0x02, b)


def spki_rsa(n, e):
    alg = der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")
    key = der(0x30, der_int(n) + der_int(e))
    return der(0x30, alg + der(0x03, b"\x00" + key))


def spki_ec(params, point):
    alg = der(0x30, bytes.fromhex("06072a8648ce3d0201") + params)
    return der(0x30, alg + der(0x03, b"\x00" + point))


def ecdsa_der(raw):
    half = len(raw) // 2
    r = int.from_bytes(raw[:half], "big")
    s = int.from_bytes(raw[half:], "big")
    return der(0x30, der_int(r) + der_int(s))


def openssl_verify(workdir, name, spki, data, sig, opts=()):
    paths = [os.path.join(workdir, name + s) for s in (".der", ".dat", ".sig")]
    for p, v in zip(paths, (spki, data, sig)):
        with open(p, "wb") as f:
            f.write(v)
    cmd = ["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify",
           paths[0], *opts, "-signature", paths[2], paths[1]]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return r.returncode == 0 and b"Verified OK" in r.stdout, r.stdout


# ---------------------------------------------------------------- main
def main():
    module, user, password, workdir = sys.argv[1:5]
    pin = user + ":" + password
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slots = lib.getSlotList(tokenPresent=True)
    check(len(slots) == 1, "one slot with a token")
    info = lib.getTokenInfo(slots[0])
    check(info.label.strip() == "interop", "the token's label is interop",
          info.label)
    check(info.manufacturerID.strip() == "Nimbus", "made by Nimbus",
          info.manufacturerID)
    s = lib.openSession(slots[0], PyKCS11.CKF_SERIAL_SESSION |
                        PyKCS11.CKF_RW_SESSION)

    # a wrong PIN
    try:
        s.login(user + ":wrong-pw1")
        check(False, "a wrong PIN is refused")
    except PyKCS11.PyKCS11Error as e:
        check(e.value == PyKCS11.CKR_PIN_INCORRECT,
              "a wrong PIN is refused with CKR_PIN_INCORRECT", ckr_name(e))
    s.login(pin)
    ok("logged in as " + user)

    # RSA-2048
    pub_t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
             (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_VERIFY, True),
             (PyKCS11.CKA_MODULUS_BITS, 2048),
             (PyKCS11.CKA_PUBLIC_EXPONENT, (1, 0, 1)),
             (PyKCS11.CKA_LABEL, "py-rsa"), (PyKCS11.CKA_ID, (0x31,))]
    priv_t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
              (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, True),
              (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_SIGN, True),
              (PyKCS11.CKA_LABEL, "py-rsa"), (PyKCS11.CKA_ID, (0x31,))]
    rsa_pub, rsa_priv = s.generateKeyPair(pub_t, priv_t)
    ok("RSA-2048 key pair generated on the token")
    # EC P-256
    p256 = bytes.fromhex("06082a8648ce3d030107")
    pub_t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
             (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_VERIFY, True),
             (PyKCS11.CKA_EC_PARAMS, p256),
             (PyKCS11.CKA_LABEL, "py-ec"), (PyKCS11.CKA_ID, (0x32,))]
    priv_t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
              (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, True),
              (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_SIGN, True),
              (PyKCS11.CKA_LABEL, "py-ec"), (PyKCS11.CKA_ID, (0x32,))]
    ec_pub, ec_priv = s.generateKeyPair(
        pub_t, priv_t, mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
    ok("EC P-256 key pair generated on the token")

    # attributes
    a = s.getAttributeValue(rsa_priv, [
        PyKCS11.CKA_CLASS, PyKCS11.CKA_KEY_TYPE, PyKCS11.CKA_LABEL,
        PyKCS11.CKA_ID, PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_ALWAYS_SENSITIVE,
        PyKCS11.CKA_LOCAL, PyKCS11.CKA_PRIVATE, PyKCS11.CKA_SIGN])
    check(a[0] == PyKCS11.CKO_PRIVATE_KEY and a[1] == PyKCS11.CKK_RSA,
          "the RSA private key: class and key type", a[:2])
    check(a[2] == "py-rsa" and bytes(a[3]) == b"\x31",
          "the RSA private key: label and id", a[2:4])
    check(all(bool(x) for x in a[4:9]),
          "the RSA private key: sensitive, always sensitive, local, "
          "private, sign", a[4:9])
    n, e, bits = s.getAttributeValue(rsa_pub, [
        PyKCS11.CKA_MODULUS, PyKCS11.CKA_PUBLIC_EXPONENT,
        PyKCS11.CKA_MODULUS_BITS])
    check(bits == 2048 and len(n) == 256 and bytes(e) == b"\x01\x00\x01",
          "the RSA public key: 2048 bits, exponent 65537", (bits, len(n), e))
    # PyKCS11 turns an unreadable attribute into None; the return code
    # itself comes from the low-level call
    tmpl = LowLevel.ckattrlist(1)
    tmpl[0].SetType(PyKCS11.CKA_PRIVATE_EXPONENT)
    rv = s.lib.C_GetAttributeValue(s.session, rsa_priv, tmpl)
    check(rv == PyKCS11.CKR_ATTRIBUTE_SENSITIVE,
          "the private exponent of a sensitive key is refused with "
          "CKR_ATTRIBUTE_SENSITIVE", PyKCS11.CKR.get(rv, rv))
    check(s.getAttributeValue(rsa_priv, [PyKCS11.CKA_PRIVATE_EXPONENT]) ==
          [None], "and PyKCS11 reads it as None")
    params, point = s.getAttributeValue(ec_pub, [
        PyKCS11.CKA_EC_PARAMS, PyKCS11.CKA_EC_POINT])
    point = bytes(point)
    check(bytes(params) == p256, "the EC public key: P-256 parameters")
    # CKA_EC_POINT is the DER OCTET STRING of the uncompressed point
    check(len(point) == 67 and point[:3] == b"\x04\x41\x04",
          "the EC public key: an OCTET STRING of a 65-byte point",
          point[:3].hex())
    raw_point = point[2:]
    found = s.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                           (PyKCS11.CKA_LABEL, "py-ec")])
    check(len(found) == 1, "findObjects finds the EC private key by label")

    rsa_spki = spki_rsa(int.from_bytes(bytes(n), "big"),
                        int.from_bytes(bytes(e), "big"))
    ec_spki = spki_ec(p256, raw_point)
    data = os.urandom(2000)

    # signatures
    cases = [
        ("SHA256-RSA-PKCS", rsa_priv, rsa_pub, rsa_spki,
         PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS), [], None),
        ("SHA256-RSA-PKCS-PSS", rsa_priv, rsa_pub, rsa_spki,
         PyKCS11.RSA_PSS_Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS_PSS,
                                   PyKCS11.CKM_SHA256,
                                   PyKCS11.CKG_MGF1_SHA256, 32),
         ["-sigopt", "rsa_padding_mode:pss", "-sigopt",
          "rsa_pss_saltlen:32"], None),
        ("ECDSA-SHA256", ec_priv, ec_pub, ec_spki,
         PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA256), [], ecdsa_der),
    ]
    for name, priv, pub, spki, mech, opts, conv in cases:
        try:
            sig = bytes(s.sign(priv, data, mech))
            check(s.verify(pub, data, sig, mech),
                  name + ": the token verifies its signature")
            check(not s.verify(pub, data + b"x", sig, mech),
                  name + ": not for other data")
            good, out = openssl_verify(workdir, name, spki, data,
                                       conv(sig) if conv else sig, opts)
            check(good, name + ": openssl verifies the signature", out)
        except PyKCS11.PyKCS11Error as err:
            check(False, name + ": " + ckr_name(err))

    # AES-GCM with a token key
    aes = s.generateKey([(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                         (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                         (PyKCS11.CKA_VALUE_LEN, 32),
                         (PyKCS11.CKA_TOKEN, True),
                         (PyKCS11.CKA_ENCRYPT, True),
                         (PyKCS11.CKA_DECRYPT, True),
                         (PyKCS11.CKA_LABEL, "py-aes")],
                        mecha=PyKCS11.MechanismAESGENERATEKEY)
    ok("AES-256 key generated on the token")
    check(s.getAttributeValue(aes, [PyKCS11.CKA_VALUE_LEN])[0] == 32,
          "the AES key is 32 bytes")
    iv = os.urandom(12)
    aad = b"nimbus pykcs11"
    plain = os.urandom(1000)
    try:
        mech = PyKCS11.AES_GCM_Mechanism(iv, aad, 128)
        ct = bytes(s.encrypt(aes, plain, mech))
        check(len(ct) == len(plain) + 16, "AES-GCM: ciphertext and tag")
        back = bytes(s.decrypt(aes, ct, PyKCS11.AES_GCM_Mechanism(iv, aad, 128)))
        check(back == plain, "AES-GCM round trip on the token")
        bad = ct[:-1] + bytes([ct[-1] ^ 1])
        try:
            s.decrypt(aes, bad, PyKCS11.AES_GCM_Mechanism(iv, aad, 128))
            check(False, "AES-GCM: a changed tag is refused")
        except PyKCS11.PyKCS11Error as err:
            ok("AES-GCM: a changed tag is refused (%s)" % ckr_name(err))
    except PyKCS11.PyKCS11Error as err:
        check(False, "AES-GCM with the token key: " + ckr_name(err))

    # Multi-part AES-GCM decryption through the binding's own wrappers, each
    # call made twice with one list as PyKCS11 does (the first call sizes
    # the list): an update that answered 0 would leave the list empty, the
    # second call would only ask again, and the data would never go in.
    try:
        mech = PyKCS11.AES_GCM_Mechanism(iv, aad, 128)
        ct = bytes(s.encrypt(aes, plain, mech))
        mech = PyKCS11.AES_GCM_Mechanism(iv, aad, 128)
        native = mech.to_native()
        rv = s.lib.C_DecryptInit(s.session, native, aes)
        if rv != PyKCS11.CKR_OK:
            raise PyKCS11.PyKCS11Error(rv)
        got = b""
        for i in range(0, len(ct), 7):
            part = PyKCS11.ckbytelist(ct[i:i + 7])
            out = PyKCS11.ckbytelist()
            for _ in range(2):
                rv = s.lib.C_DecryptUpdate(s.session, part, out)
                if rv != PyKCS11.CKR_OK:
                    raise PyKCS11.PyKCS11Error(rv)
            got += bytes(out)
        out = PyKCS11.ckbytelist()
        for _ in range(2):
            rv = s.lib.C_DecryptFinal(s.session, out)
            if rv != PyKCS11.CKR_OK:
                raise PyKCS11.PyKCS11Error(rv)
        got += bytes(out)
        check(got == plain, "AES-GCM decrypted in 7-byte parts, two calls "
              "each", "%d bytes back" % len(got))
    except PyKCS11.PyKCS11Error as err:
        check(False, "AES-GCM multi-part decryption: " + ckr_name(err))

    # AES-GCM known answer: the GCM specification's test case 16 (AES-256,
    # 96-bit IV, 60 bytes, 20 bytes of AAD). (Not a zero IV: Nimbus, like
    # CloudHSM, treats an all-zero IV as "generate one for me".)
    try:
        key = bytes.fromhex("feffe9928665731c6d6a8f9467308308"
                            "feffe9928665731c6d6a8f9467308308")
        iv = bytes.fromhex("cafebabefacedbaddecaf888")
        aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        plain = bytes.fromhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
            "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
            "ba637b39")
        want = bytes.fromhex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd"
            "2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
            "bcc9f662" "76fc6ece0f4e1768cddf8853bb2d551b")
        kat = s.createObject([(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                              (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                              (PyKCS11.CKA_TOKEN, False),
                              (PyKCS11.CKA_ENCRYPT, True),
                              (PyKCS11.CKA_DECRYPT, True),
                              (PyKCS11.CKA_VALUE, key)])
        ct = bytes(s.encrypt(kat, plain,
                             PyKCS11.AES_GCM_Mechanism(iv, aad, 128)))
        check(ct == want, "AES-GCM: the published test vector", ct.hex())
        back = bytes(s.decrypt(kat, want,
                               PyKCS11.AES_GCM_Mechanism(iv, aad, 128)))
        check(back == plain, "AES-GCM: the test vector decrypts")
    except PyKCS11.PyKCS11Error as err:
        check(False, "AES-GCM test vector: " + ckr_name(err))

    s.logout()
    found = s.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)])
    check(len(found) == 0, "after logout no private key is found")
    s.closeSession()

    print("all PyKCS11 checks passed" if FAILURES == 0
          else "%d PyKCS11 checks failed" % FAILURES)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
