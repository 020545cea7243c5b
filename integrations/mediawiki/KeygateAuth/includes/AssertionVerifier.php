<?php

namespace MediaWiki\Extension\KeygateAuth;

/**
 * Verifies keygate's identity assertion (a compact JWS) with PHP's own openssl and sodium:
 * no Composer dependency. Answers the claims, or null for anything not exactly right — the
 * caller then treats the request as anonymous.
 */
class AssertionVerifier {
	private const MAX_CHARS = 8192;
	private const ASYMMETRIC = [ 'ES256', 'RS256', 'EdDSA' ];

	/** @var callable(string $kid): ?array a JWK by kid, or null */
	private $keyByKid;
	/** @var string shared HS256 secret, '' when none */
	private $secret;
	/** @var string */
	private $issuer;
	/** @var string */
	private $audience;
	/** @var int */
	private $skew;
	/** @var callable(): int */
	private $now;

	/**
	 * @param callable|null $keyByKid kid → JWK (keygate's JWKS), null when only a secret is configured
	 * @param string $secret HS256 secret shared with keygate, '' when none
	 */
	public function __construct( ?callable $keyByKid, string $secret, string $issuer, string $audience,
		int $skewSeconds, ?callable $now = null
	) {
		$this->keyByKid = $keyByKid;
		$this->secret = $secret;
		$this->issuer = $issuer;
		$this->audience = $audience;
		$this->skew = $skewSeconds;
		$this->now = $now ?? 'time';
	}

	/**
	 * @return array|null the verified claims
	 */
	public function verify( string $token ): ?array {
		if ( strlen( $token ) > self::MAX_CHARS
			|| !preg_match( '/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/', $token )
		) {
			return null;
		}
		[ $h, $p, $s ] = explode( '.', $token );
		$header = json_decode( self::b64( $h ), true );
		$claims = json_decode( self::b64( $p ), true );
		$sig = self::b64( $s );
		if ( !is_array( $header ) || !is_array( $claims ) || $sig === '' ) {
			return null;
		}
		$alg = $header['alg'] ?? null;
		if ( !is_string( $alg ) || !$this->signatureOk( $alg, $header['kid'] ?? null, "$h.$p", $sig ) ) {
			return null;
		}
		return $this->claimsOk( $claims ) ? $claims : null;
	}

	private function signatureOk( string $alg, $kid, string $data, string $sig ): bool {
		if ( $alg === 'HS256' ) {
			// Only with a configured secret: a JWKS never makes HS256 acceptable (alg confusion).
			return $this->secret !== ''
				&& hash_equals( hash_hmac( 'sha256', $data, $this->secret, true ), $sig );
		}
		if ( !in_array( $alg, self::ASYMMETRIC, true ) || $this->keyByKid === null || !is_string( $kid ) ) {
			return false;
		}
		$jwk = ( $this->keyByKid )( $kid );
		if ( !is_array( $jwk ) || ( isset( $jwk['alg'] ) && $jwk['alg'] !== $alg ) ) {
			return false;
		}
		if ( $alg === 'EdDSA' ) {
			if ( ( $jwk['kty'] ?? '' ) !== 'OKP' || ( $jwk['crv'] ?? '' ) !== 'Ed25519' || strlen( $sig ) !== 64 ) {
				return false;
			}
			$pub = self::b64( $jwk['x'] ?? '' );
			return strlen( $pub ) === 32 && sodium_crypto_sign_verify_detached( $sig, $data, $pub );
		}
		$pem = $alg === 'ES256' ? Jwk::ecPem( $jwk ) : Jwk::rsaPem( $jwk );
		if ( $pem === null ) {
			return false;
		}
		if ( $alg === 'ES256' ) {
			if ( strlen( $sig ) !== 64 ) {
				return false;
			}
			$sig = Jwk::ecdsaDer( $sig );
		}
		return openssl_verify( $data, $sig, $pem, OPENSSL_ALGO_SHA256 ) === 1;
	}

	private function claimsOk( array $c ): bool {
		$now = ( $this->now )();
		$aud = $c['aud'] ?? null;
		$audOk = is_string( $aud ) ? $aud === $this->audience
			: ( is_array( $aud ) && in_array( $this->audience, $aud, true ) );
		return ( $c['iss'] ?? null ) === $this->issuer
			&& $audOk
			&& is_int( $c['exp'] ?? null ) && $c['exp'] + $this->skew > $now
			&& is_int( $c['iat'] ?? null ) && $c['iat'] - $this->skew <= $now
			&& ( !isset( $c['nbf'] ) || ( is_int( $c['nbf'] ) && $c['nbf'] - $this->skew <= $now ) )
			&& is_string( $c['sub'] ?? null ) && $c['sub'] !== ''
			&& is_string( $c['scheme'] ?? null )
			&& is_array( $c['groups'] ?? [] )
			&& count( array_filter( $c['groups'] ?? [], 'is_string' ) ) === count( $c['groups'] ?? [] );
	}

	/** base64url without padding; '' for anything that is not. */
	public static function b64( string $text ): string {
		$out = base64_decode( strtr( $text, '-_', '+/' ), true );
		return $out === false ? '' : $out;
	}
}
