<?php

namespace MediaWiki\Extension\KeygateAuth;

use MediaWiki\MediaWikiServices;
use MediaWiki\User\UserIdentity;

/**
 * Keeps the configured groups ($wgKeygateAuthSyncGroups) of a wiki user in step with the
 * groups keygate's assertion names: added when keygate says so, removed when it no longer does.
 * Groups not listed there are the wiki's own business and are never touched.
 */
class GroupSync {
	/** @var array<string,string[]> groups for users created later in this request, by name */
	private static $pending = [];

	/** @param string[] $managed @param string[] $keygateGroups */
	public static function apply( UserIdentity $user, array $managed, array $keygateGroups ): void {
		if ( !$managed ) {
			return;
		}
		$groups = MediaWikiServices::getInstance()->getUserGroupManager();
		$current = $groups->getUserGroups( $user );
		foreach ( $managed as $group ) {
			$want = in_array( $group, $keygateGroups, true );
			$has = in_array( $group, $current, true );
			if ( $want && !$has ) {
				$groups->addUserToGroup( $user, $group );
			} elseif ( !$want && $has ) {
				$groups->removeUserFromGroup( $user, $group );
			}
		}
	}

	/** For an account the session is about to create (first visit): applied by onLocalUserCreated. */
	public static function defer( string $name, array $managed, array $keygateGroups ): void {
		self::$pending[$name] = [ $managed, $keygateGroups ];
	}

	public static function applyDeferred( UserIdentity $user ): void {
		$pending = self::$pending[$user->getName()] ?? null;
		if ( $pending !== null ) {
			unset( self::$pending[$user->getName()] );
			self::apply( $user, $pending[0], $pending[1] );
		}
	}
}
