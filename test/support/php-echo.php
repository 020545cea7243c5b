<?php
// A plain PHP upstream for keygate's tests: answers with the request headers exactly as a PHP
// application reads them, i.e. every HTTP_* entry of $_SERVER (after PHP's own name folding).
$seen = [];
foreach ($_SERVER as $name => $value) {
	if (strncmp($name, 'HTTP_', 5) === 0) {
		$seen[$name] = $value;
	}
}
header('Content-Type: application/json');
echo json_encode(['uri' => $_SERVER['REQUEST_URI'], 'server' => $seen], JSON_INVALID_UTF8_SUBSTITUTE);
