//! Micro-benchmarks of request authentication: socket JWT verification through rollcall's own
//! `Verifier` (HS256 with the configured secret; ES256 with the P-256 key pair shipped in
//! `bench/keys/`, generated for benchmarks only) and the HMAC-SHA256 request signature the game
//! façade checks (`hex(HMAC(secret, timestamp + body))`, compared in constant time).
//!
//! Run: `cargo bench -p rollcall-bench --bench micro_auth`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rollcall::auth::{sign_hs256, unix_now, Claims, Verifier};
use rollcall::config::{FileConfig, JwtKeyConfig, Settings};
use sha2::Sha256;

const SECRET: &str = "bench-secret-0123456789abcdef";

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys")
}

fn verifier() -> Verifier {
    let f = FileConfig {
        jwt_secret: Some(SECRET.into()),
        jwt_keys: vec![JwtKeyConfig {
            alg: "ES256".into(),
            public_key_file: keys_dir().join("es256-public.pem"),
        }],
        ..FileConfig::default()
    };
    Verifier::from_settings(&Settings::from_file(f).expect("bench settings are valid"))
        .expect("the shipped public key loads")
}

fn es256_token() -> String {
    let pem = std::fs::read(keys_dir().join("es256-private.pem")).expect("shipped private key");
    let key = EncodingKey::from_ec_pem(&pem).expect("a PKCS#8 P-256 key");
    let claims = Claims {
        sub: Some("player-42".into()),
        name: Some("Player 42".into()),
        exp: unix_now() + 3600,
        ..Claims::default()
    };
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).expect("ES256 signs")
}

fn jwt(c: &mut Criterion) {
    let v = verifier();
    let hs = sign_hs256(SECRET, "player-42", Some("Player 42"), 3600);
    let es = es256_token();
    assert!(
        v.verify(&hs).is_ok() && v.verify(&es).is_ok(),
        "both tokens verify"
    );
    let mut g = c.benchmark_group("jwt_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hs256", |b| b.iter(|| v.verify(black_box(&hs))));
    g.bench_function("es256", |b| b.iter(|| v.verify(black_box(&es))));
    g.finish();
}

fn hmac_sig(c: &mut Criterion) {
    let secret = b"test-secret";
    let ts = "1700000000000";
    let body = br#"{"roomId":"123","sessionJwts":["eyJhbGciOiJFUzI1NiJ9.eyJwbHlySWQiOiJhbGljZSJ9.c2ln","eyJhbGciOiJFUzI1NiJ9.eyJwbHlySWQiOiJib2IifQ.c2ln"],"sync":true}"#;
    let sign = |body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(ts.as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    let expected = sign(body);
    let mut g = c.benchmark_group("hmac_sha256");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("sign_hex", |b| b.iter(|| sign(black_box(body))));
    g.bench_function("verify_ct", |b| {
        b.iter(|| rollcall::auth::secret_eq(sign(black_box(body)).as_bytes(), expected.as_bytes()))
    });
    g.finish();
}

criterion_group!(benches, jwt, hmac_sig);
criterion_main!(benches);
