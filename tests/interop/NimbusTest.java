/*
 * NimbusTest.java - Java 17 SunPKCS11 against the Nimbus module (run by
 * tests/interop/java.sh, which made the keys with keytool first).
 *
 *   java NimbusTest <provider config> <PIN> <RSA alias> <EC alias> <AES alias>
 *
 * With the token's keys (found through the PKCS11 KeyStore):
 *   - SHA256withRSA, RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) and
 *     SHA256withECDSA signatures made on the token, verified by the JDK's
 *     software providers with the certificate's public key, and refused by
 *     them for other data;
 *   - AES/GCM/NoPadding with the token's AES key: a round trip on the
 *     token, a changed tag refused; and with a key of known bytes imported
 *     into the token, the token's ciphertext equals the JDK's (SunJCE), and
 *     the token decrypts what SunJCE encrypted;
 *   - 8 threads signing at once with the RSA and the EC key, every signature
 *     verified;
 *   - a wrong PIN refused.
 * Prints "ok: ..." or "FAIL: ..." per check; exits 1 if any failed.
 */
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.SecretKey;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public class NimbusTest {
    private static int failures = 0;
    private static final SecureRandom RNG = new SecureRandom();

    private static void ok(String what) {
        System.out.println("ok: " + what);
    }

    private static void check(boolean cond, String what) {
        if (cond) {
            ok(what);
        } else {
            System.out.println("FAIL: java: " + what);
            failures++;
        }
    }

    private static void fail(String what, Throwable t) {
        System.out.println("FAIL: java: " + what + ": " + t);
        for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
            System.out.println("    caused by: " + c);
        }
        failures++;
    }

    private static byte[] sign(Provider p, String alg, PSSParameterSpec pss,
                               PrivateKey key, byte[] data) throws Exception {
        Signature s = Signature.getInstance(alg, p);
        if (pss != null) {
            s.setParameter(pss);
        }
        s.initSign(key);
        s.update(data);
        return s.sign();
    }

    /* Verified by the JDK's own software provider, not the token. */
    private static boolean verifySoft(String alg, PSSParameterSpec pss,
                                      PublicKey key, byte[] data, byte[] sig)
        throws Exception {
        Signature s = Signature.getInstance(alg);
        if (pss != null) {
            s.setParameter(pss);
        }
        s.initVerify(key);
        s.update(data);
        if (s.getProvider().getName().startsWith("SunPKCS11")) {
            throw new IllegalStateException("verifier is the token");
        }
        return s.verify(sig);
    }

    private static void signCase(Provider p, String name, String alg,
                                 PSSParameterSpec pss, PrivateKey key,
                                 PublicKey pub) {
        try {
            byte[] data = new byte[3000];
            RNG.nextBytes(data);
            byte[] sig = sign(p, alg, pss, key, data);
            check(verifySoft(alg, pss, pub, data, sig),
                  name + ": the token's signature verifies in software");
            data[0] ^= 1;
            check(!verifySoft(alg, pss, pub, data, sig),
                  name + ": and not for other data");
        } catch (Exception e) {
            fail(name, e);
        }
    }

    private static void gcm(Provider p, SecretKey tokenKey) {
        try {
            byte[] iv = new byte[12];
            byte[] aad = "nimbus aad".getBytes(StandardCharsets.UTF_8);
            byte[] plain = new byte[1000];
            RNG.nextBytes(iv);
            RNG.nextBytes(plain);

            Cipher c = Cipher.getInstance("AES/GCM/NoPadding", p);
            c.init(Cipher.ENCRYPT_MODE, tokenKey, new GCMParameterSpec(128, iv));
            c.updateAAD(aad);
            byte[] ct = c.doFinal(plain);
            check(ct.length == plain.length + 16,
                  "AES-GCM with the token key: ciphertext and 16-byte tag");
            c.init(Cipher.DECRYPT_MODE, tokenKey, new GCMParameterSpec(128, iv));
            c.updateAAD(aad);
            check(Arrays.equals(c.doFinal(ct), plain),
                  "AES-GCM with the token key: round trip on the token");
            ct[ct.length - 1] ^= 1;
            c.init(Cipher.DECRYPT_MODE, tokenKey, new GCMParameterSpec(128, iv));
            c.updateAAD(aad);
            try {
                c.doFinal(ct);
                check(false, "AES-GCM: a changed tag is refused");
            } catch (AEADBadTagException e) {
                ok("AES-GCM: a changed tag is refused");
            }
        } catch (Exception e) {
            fail("AES-GCM with the token key", e);
        }
        try {
            /* a key of known bytes, imported into the token */
            byte[] raw = new byte[32];
            byte[] iv = new byte[12];
            byte[] plain = new byte[777];
            RNG.nextBytes(raw);
            RNG.nextBytes(iv);
            RNG.nextBytes(plain);
            SecretKeySpec soft = new SecretKeySpec(raw, "AES");
            SecretKey imported =
                SecretKeyFactory.getInstance("AES", p).generateSecret(soft);
            Cipher tok = Cipher.getInstance("AES/GCM/NoPadding", p);
            Cipher jdk = Cipher.getInstance("AES/GCM/NoPadding", "SunJCE");
            tok.init(Cipher.ENCRYPT_MODE, imported, new GCMParameterSpec(128, iv));
            jdk.init(Cipher.ENCRYPT_MODE, soft, new GCMParameterSpec(128, iv));
            byte[] a = tok.doFinal(plain);
            byte[] b = jdk.doFinal(plain);
            check(Arrays.equals(a, b),
                  "AES-GCM: the token's ciphertext and tag equal SunJCE's");
            tok.init(Cipher.DECRYPT_MODE, imported, new GCMParameterSpec(128, iv));
            check(Arrays.equals(tok.doFinal(b), plain),
                  "AES-GCM: the token decrypts what SunJCE encrypted");
        } catch (Exception e) {
            fail("AES-GCM with an imported key", e);
        }
    }

    private static void threads(Provider p, PrivateKey rsa, PublicKey rsaPub,
                                PrivateKey ec, PublicKey ecPub) {
        final int nthreads = 8;
        final int rounds = 10;
        ExecutorService ex = Executors.newFixedThreadPool(nthreads);
        List<Future<Integer>> fs = new ArrayList<>();
        try {
            for (int t = 0; t < nthreads; t++) {
                final boolean useRsa = t % 2 == 0;
                fs.add(ex.submit(new Callable<Integer>() {
                    public Integer call() throws Exception {
                        int good = 0;
                        String alg = useRsa ? "SHA256withRSA" : "SHA256withECDSA";
                        for (int i = 0; i < rounds; i++) {
                            byte[] data = new byte[200 + i];
                            RNG.nextBytes(data);
                            byte[] sig = sign(p, alg, null, useRsa ? rsa : ec, data);
                            if (verifySoft(alg, null, useRsa ? rsaPub : ecPub,
                                           data, sig)) {
                                good++;
                            }
                        }
                        return good;
                    }
                }));
            }
            int total = 0;
            for (Future<Integer> f : fs) {
                total += f.get(120, TimeUnit.SECONDS);
            }
            check(total == nthreads * rounds,
                  nthreads + " threads signing at once: " + total + " of "
                      + nthreads * rounds + " signatures verify");
        } catch (Exception e) {
            fail(nthreads + " threads signing at once", e);
        } finally {
            ex.shutdownNow();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: NimbusTest <config> <pin> <rsa> <ec> <aes>");
            System.exit(99);
        }
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        ok("provider " + p.getName() + " configured");

        KeyStore bad = KeyStore.getInstance("PKCS11", p);
        try {
            bad.load(null, "alice:wrong-pw1".toCharArray());
            check(false, "a wrong PIN is refused");
        } catch (Exception e) {
            /* IOException <- UnrecoverableKeyException <- LoginException
             * <- PKCS11Exception: CKR_PIN_INCORRECT */
            String chain = "";
            for (Throwable c = e; c != null; c = c.getCause()) {
                chain += " <- " + c;
            }
            check(chain.contains("CKR_PIN_INCORRECT"),
                  "a wrong PIN is refused with CKR_PIN_INCORRECT");
            if (!chain.contains("CKR_PIN_INCORRECT")) {
                System.out.println("    " + chain);
            }
        }

        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        ok("logged in");
        PrivateKey rsa = (PrivateKey) ks.getKey(args[2], null);
        PrivateKey ec = (PrivateKey) ks.getKey(args[3], null);
        Key aes = ks.getKey(args[4], null);
        check(rsa != null && "RSA".equals(rsa.getAlgorithm()),
              "the RSA private key " + args[2] + " is in the key store");
        check(ec != null && "EC".equals(ec.getAlgorithm()),
              "the EC private key " + args[3] + " is in the key store");
        check(aes instanceof SecretKey && "AES".equals(aes.getAlgorithm()),
              "the AES key " + args[4] + " is in the key store");
        if (rsa == null || ec == null || !(aes instanceof SecretKey)) {
            System.exit(1);
        }
        PublicKey rsaPub = ((X509Certificate) ks.getCertificate(args[2])).getPublicKey();
        PublicKey ecPub = ((X509Certificate) ks.getCertificate(args[3])).getPublicKey();

        signCase(p, "SHA256withRSA", "SHA256withRSA", null, rsa, rsaPub);
        PSSParameterSpec pss = new PSSParameterSpec("SHA-256", "MGF1",
                                                    MGF1ParameterSpec.SHA256, 32, 1);
        signCase(p, "RSASSA-PSS (SHA-256, salt 32)", "RSASSA-PSS", pss, rsa, rsaPub);
        signCase(p, "SHA256withECDSA", "SHA256withECDSA", null, ec, ecPub);
        gcm(p, (SecretKey) aes);
        threads(p, rsa, rsaPub, ec, ecPub);

        System.out.println(failures == 0 ? "all Java checks passed"
                                         : failures + " Java checks failed");
        System.exit(failures == 0 ? 0 : 1);
    }
}
