<?php

namespace MediaWiki\Extension\KeygateAuth;

/**
 * Public JWKs (RFC 7517) as PEM for openssl, built with a few lines of DER: PHP's openssl
 * takes no JWK itself, and the wiki should need no Composer package for it.
 */
class Jwk {
	// SubjectPublicKeyInfo header for a P-256 key (id-ecPublicKey, prime256v1), before 04 || x || y
	private const P256_SPKI_PREFIX = '3059301306072a8648ce3d020106082a8648ce3d030107034200';
	// AlgorithmIdentifier rsaEncryption, NULL
	private const RSA_ALGORITHM = '300d06092a864886f70d0101010500';

	public static function ecPem( array $jwk ): ?string {
		if ( ( $jwk['kty'] ?? '' ) !== 'EC' || ( $jwk['crv'] ?? '' ) !== 'P-256' ) {
			return null;
		}
		$x = AssertionVerifier::b64( $jwk['x'] ?? '' );
		$y = AssertionVerifier::b64( $jwk['y'] ?? '' );
		if ( strlen( $x ) !== 32 || strlen( $y ) !== 32 ) {
			return null;
		}
		return self::pem( hex2bin( self::P256_SPKI_PREFIX ) . "\x04" . $x . $y );
	}

	public static function rsaPem( array $jwk ): ?string {
		if ( ( $jwk['kty'] ?? '' ) !== 'RSA' ) {
			return null;
		}
		$n = AssertionVerifier::b64( $jwk['n'] ?? '' );
		$e = AssertionVerifier::b64( $jwk['e'] ?? '' );
		if ( strlen( $n ) < 256 || $e === '' ) {
			return null;
		}
		$rsaKey = self::der( 0x30, self::integer( $n ) . self::integer( $e ) );
		$spki = self::der( 0x30, hex2bin( self::RSA_ALGORITHM ) . self::der( 0x03, "\x00" . $rsaKey ) );
		return self::pem( $spki );
	}

	/** A JWS ES256 signature (r || s, 32 bytes each) as the DER openssl_verify expects. */
	public static function ecdsaDer( string $rs ): string {
		return self::der( 0x30, self::integer( substr( $rs, 0, 32 ) ) . self::integer( substr( $rs, 32 ) ) );
	}

	private static function integer( string $bytes ): string {
		$bytes = ltrim( $bytes, "\x00" );
		if ( $bytes === '' || ord( $bytes[0] ) > 0x7f ) {
			$bytes = "\x00" . $bytes;
		}
		return self::der( 0x02, $bytes );
	}

	private static function der( int $tag, string $content ): string {
		$len = strlen( $content );
		if ( $len < 0x80 ) {
			return chr( $tag ) . chr( $len ) . $content;
		}
		$lenBytes = ltrim( pack( 'N', $len ), "\x00" );
		return chr( $tag ) . chr( 0x80 | strlen( $lenBytes ) ) . $lenBytes . $content;
	}

	private static function pem( string $der ): string {
		return "-----BEGIN PUBLIC KEY-----\n" . chunk_split( base64_encode( $der ), 64, "\n" )
			. "-----END PUBLIC KEY-----\n";
	}
}
