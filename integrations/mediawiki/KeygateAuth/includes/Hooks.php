<?php

namespace MediaWiki\Extension\KeygateAuth;

use OutputPage;
use Skin;
use User;

class Hooks {
	/** An account created on first visit gets its keygate groups at once. */
	public static function onLocalUserCreated( User $user, $autocreated ): void {
		GroupSync::applyDeferred( $user );
	}

	/** mws.tokenAuthenticator on every page, as the token authenticator provided it. */
	public static function onBeforePageDisplay( OutputPage $out, Skin $skin ): void {
		$out->addModules( 'ext.keygateAuth.tokenAuthenticator' );
	}
}
