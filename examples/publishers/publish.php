<?php
// Publishes a message to hasses twice: on the control port (one JSON line,
// answered with the event id) and through the HTTP API. No extension needed.
//   php publish.php TOKEN MESSAGE
// Environment: HASSES_CTL (127.0.0.1:8085), HASSES_PUB
// (http://127.0.0.1:8086/publish), HASSES_CTL_SECRET (if the server has one).
[$token, $message] = [$argv[1] ?? 'room1', $argv[2] ?? 'hello from PHP'];
$ctl = getenv('HASSES_CTL') ?: '127.0.0.1:8085';
$pub = getenv('HASSES_PUB') ?: 'http://127.0.0.1:8086/publish';
$secret = getenv('HASSES_CTL_SECRET') ?: '';
$json = json_encode(['token' => $token, 'data' => $message]);

// Control port. The classic one-liner also works: fwrite($s, "$token=$message;").
$s = stream_socket_client("tcp://$ctl", $errno, $errstr, 5) or exit("control port: $errstr\n");
fwrite($s, ($secret !== '' ? "auth $secret\n" : '') . $json . "\n");
do { $reply = fgets($s); } while ($reply !== false && str_starts_with($reply, '{"auth"'));
fclose($s);
echo "control port: ", trim((string)$reply), "\n";

// HTTP API.
$headers = "Content-Type: application/json\r\n" . ($secret !== '' ? "Authorization: Bearer $secret\r\n" : '');
$ctx = stream_context_create(['http' => ['method' => 'POST', 'header' => $headers, 'content' => $json, 'ignore_errors' => true]]);
echo "HTTP API: ", trim((string)file_get_contents($pub, false, $ctx)), "\n";
