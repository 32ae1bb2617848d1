/*
 * The signed JWT client assertion of Azure AD's certificate credential flow:
 * RS256 over {aud, iss, sub, jti, nbf, iat, exp}, with the certificate's
 * SHA-1 and SHA-256 thumbprints in the header so Azure AD can pick the key.
 * Error messages are fixed strings: they must never echo the key, the
 * password or the PEM text.
 */
#include "la_core.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define ASSERTION_LIFETIME 600
#define APPEND_LIT(b, s) la_buf_append((b), (s), sizeof(s) - 1)

/* What the PEM password callback sees; asked tells a wrong password apart
 * from a missing key. */
typedef struct password_ctx {
    const char *password;
    int asked;
} password_ctx;

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    password_ctx *ctx = u;
    size_t len;
    (void)rwflag;
    ctx->asked = 1;
    /* Never fall back to OpenSSL's default, which prompts on the terminal. */
    if (!ctx->password)
        return -1;
    len = strlen(ctx->password);
    if (size < 0 || len > (size_t)size)
        return -1;
    memcpy(buf, ctx->password, len);
    return (int)len;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* base64url without padding (RFC 7515, section 2). */
static int append_b64url(la_buf *b, const unsigned char *p, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char out[4];
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
        out[0] = tab[v >> 18 & 63]; out[1] = tab[v >> 12 & 63];
        out[2] = tab[v >> 6 & 63];  out[3] = tab[v & 63];
        if (la_buf_append(b, out, 4) != 0)
            return -1;
    }
    if (len - i == 1) {
        out[0] = tab[p[i] >> 2]; out[1] = tab[(p[i] & 3) << 4];
        return la_buf_append(b, out, 2);
    }
    if (len - i == 2) {
        out[0] = tab[p[i] >> 2];
        out[1] = tab[((p[i] & 3) << 4) | p[i + 1] >> 4];
        out[2] = tab[(p[i + 1] & 15) << 2];
        return la_buf_append(b, out, 3);
    }
    return 0;
}

/* "name":"<b64url(digest of der)>" */
static int append_thumbprint(la_buf *b, const char *name, const EVP_MD *md,
                             const unsigned char *der, size_t der_len)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(der, der_len, digest, &digest_len, md, NULL))
        return -1;
    if (la_buf_append_json_string(b, name, strlen(name)) != 0
        || la_buf_append(b, ":\"", 2) != 0
        || append_b64url(b, digest, digest_len) != 0)
        return -1;
    return la_buf_putc(b, '"');
}

char *la_client_assertion(const char *pem, size_t pem_len, const char *password,
                          const char *client_id, const char *audience,
                          long long now, char *err, size_t errlen)
{
    password_ctx pw;
    BIO *bio = NULL;
    X509 *cert = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md_ctx = NULL;
    unsigned char *der = NULL, *sig = NULL;
    unsigned char jti[16];
    char text[128];
    la_buf header, payload, jwt;
    size_t sig_len = 0, i;
    int der_len;
    const char *fail = "out of memory while building the client assertion";
    char *result = NULL;

    la_buf_init(&header);
    la_buf_init(&payload);
    la_buf_init_secret(&jwt);  /* a signed assertion is a credential: wiped as it grows */
    pw.password = password;
    pw.asked = 0;
    /* Stale errors would mislead OpenSSL's own decoder fallbacks. */
    ERR_clear_error();

    if (!pem || !pem_len || pem_len > INT_MAX || !client_id || !audience) {
        fail = "the certificate PEM, client id and audience are required";
        goto done;
    }
    if (now > LLONG_MAX - ASSERTION_LIFETIME) {
        fail = "the current time is out of range";
        goto done;
    }
    /* A fresh BIO per read, so the key and the certificate may come in
     * either order: each reader skips the blocks it does not want. */
    if (!(bio = BIO_new_mem_buf(pem, (int)pem_len)))
        goto done;
    if (!(cert = PEM_read_bio_X509(bio, NULL, password_cb, &pw))) {
        fail = "no certificate found in the PEM";
        goto done;
    }
    BIO_free(bio);
    pw.asked = 0;
    if (!(bio = BIO_new_mem_buf(pem, (int)pem_len)))
        goto done;
    if (!(pkey = PEM_read_bio_PrivateKey(bio, NULL, password_cb, &pw))) {
        if (!pw.asked)
            fail = "no private key found in the PEM";
        else if (!password)
            fail = "the private key is encrypted and no password was given";
        else
            fail = "cannot read the private key (wrong password?)";
        goto done;
    }
    if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
        fail = "the private key is not an RSA key (RS256 needs one)";
        goto done;
    }
    /* Azure AD would reject a mismatched pair with a much vaguer error. */
    if (X509_check_private_key(cert, pkey) != 1) {
        fail = "the private key does not match the certificate";
        goto done;
    }

    if ((der_len = i2d_X509(cert, &der)) <= 0) {
        fail = "cannot encode the certificate";
        goto done;
    }
    if (APPEND_LIT(&header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",") != 0
        || append_thumbprint(&header, "x5t", EVP_sha1(), der, (size_t)der_len) != 0
        || la_buf_putc(&header, ',') != 0
        || append_thumbprint(&header, "x5t#S256", EVP_sha256(), der, (size_t)der_len) != 0
        || la_buf_putc(&header, '}') != 0)
        goto done;

    if (RAND_bytes(jti, sizeof jti) != 1) {
        fail = "cannot get random bytes for the assertion id";
        goto done;
    }
    for (i = 0; i < sizeof jti; i++)
        snprintf(text + 2 * i, 3, "%02x", jti[i]);
    if (APPEND_LIT(&payload, "{\"aud\":") != 0
        || la_buf_append_json_string(&payload, audience, strlen(audience)) != 0
        || APPEND_LIT(&payload, ",\"iss\":") != 0
        || la_buf_append_json_string(&payload, client_id, strlen(client_id)) != 0
        || APPEND_LIT(&payload, ",\"sub\":") != 0
        || la_buf_append_json_string(&payload, client_id, strlen(client_id)) != 0
        || APPEND_LIT(&payload, ",\"jti\":") != 0
        || la_buf_append_json_string(&payload, text, 2 * sizeof jti) != 0)
        goto done;
    snprintf(text, sizeof text, ",\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}",
             now, now, now + ASSERTION_LIFETIME);
    if (la_buf_append(&payload, text, strlen(text)) != 0)
        goto done;

    if (append_b64url(&jwt, (const unsigned char *)header.data, header.len) != 0
        || la_buf_putc(&jwt, '.') != 0
        || append_b64url(&jwt, (const unsigned char *)payload.data, payload.len) != 0)
        goto done;
    /* EVP_DigestSignInit on an RSA key defaults to PKCS#1 v1.5 padding. */
    if (!(md_ctx = EVP_MD_CTX_new()))
        goto done;
    fail = "cannot sign the client assertion";
    if (EVP_DigestSignInit(md_ctx, NULL, EVP_sha256(), NULL, pkey) != 1
        || EVP_DigestSign(md_ctx, NULL, &sig_len, (const unsigned char *)jwt.data, jwt.len) != 1
        || !(sig = OPENSSL_malloc(sig_len))
        || EVP_DigestSign(md_ctx, sig, &sig_len, (const unsigned char *)jwt.data, jwt.len) != 1)
        goto done;
    fail = "out of memory while building the client assertion";
    if (la_buf_putc(&jwt, '.') != 0 || append_b64url(&jwt, sig, sig_len) != 0)
        goto done;
    result = jwt.data;
    la_buf_init(&jwt);

done:
    if (!result)
        set_err(err, errlen, fail);
    OPENSSL_free(sig);
    EVP_MD_CTX_free(md_ctx);
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    X509_free(cert);
    BIO_free(bio);
    la_buf_free(&header);
    la_buf_free(&payload);
    la_buf_free(&jwt);
    ERR_clear_error();
    return result;
}
