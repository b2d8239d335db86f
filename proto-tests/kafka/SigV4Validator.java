package ticklake.test;

import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerExtensionsValidatorCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

/**
 * The broker side of MSK IAM for the proto-tests (proto-tests/kafka_iam.rs): an OAUTHBEARER server callback that
 * accepts a token only if it is a SigV4-presigned {@code kafka-cluster:Connect} request for this region, signed with
 * the one key pair it knows (JAAS options accessKey, secretKey, region), dated within its X-Amz-Expires of now. It
 * recomputes the signature as AWS does (canonical request, string to sign, HMAC chain), not as ticklake does.
 */
public class SigV4Validator implements AuthenticateCallbackHandler {
    private String accessKey;
    private String secretKey;
    private String region;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        Map<String, ?> options = jaas.get(0).getOptions();
        accessKey = (String) options.get("accessKey");
        secretKey = (String) options.get("secretKey");
        region = (String) options.get("region");
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback c : callbacks) {
            if (c instanceof OAuthBearerValidatorCallback v) {
                String why = check(v.tokenValue());
                if (why == null) {
                    v.token(token(v.tokenValue()));
                } else {
                    System.out.println("SigV4Validator refused a token: " + why);
                    v.error("invalid_token", null, null);
                }
            } else if (c instanceof OAuthBearerExtensionsValidatorCallback) {
                // no extensions expected, none validated
            } else {
                throw new UnsupportedCallbackException(c);
            }
        }
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20").replace("*", "%2A").replace("%7E", "~");
    }

    private static byte[] hmac(byte[] key, String data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) {
            s.append(String.format("%02x", x));
        }
        return s.toString();
    }

    /** Why the token is refused, or null. */
    private String check(String token) {
        try {
            URI url = URI.create(new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8));
            String host = "kafka." + region + ".amazonaws.com";
            if (!"https".equals(url.getScheme()) || !host.equals(url.getHost()) || !"/".equals(url.getPath())) {
                return "not a request to https://" + host + "/: " + url;
            }
            Map<String, String> q = new LinkedHashMap<>();
            for (String pair : url.getRawQuery().split("&")) {
                String[] kv = pair.split("=", 2);
                q.put(URLDecoder.decode(kv[0], StandardCharsets.UTF_8), URLDecoder.decode(kv[1], StandardCharsets.UTF_8));
            }
            if (!"kafka-cluster:Connect".equals(q.get("Action"))) {
                return "action " + q.get("Action");
            }
            String date = q.get("X-Amz-Date");
            String day = date.substring(0, 8);
            String scope = day + "/" + region + "/kafka-cluster/aws4_request";
            if (!(accessKey + "/" + scope).equals(q.get("X-Amz-Credential"))) {
                return "credential " + q.get("X-Amz-Credential");
            }
            Instant signed = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
                .parse(date, Instant::from);
            long expires = Long.parseLong(q.get("X-Amz-Expires"));
            Instant now = Instant.now();
            if (now.isAfter(signed.plusSeconds(expires)) || now.isBefore(signed.minusSeconds(300))) {
                return "signed at " + signed + ", valid " + expires + " s, now " + now;
            }
            TreeMap<String, String> signedParams = new TreeMap<>(q);
            signedParams.remove("X-Amz-Signature");
            signedParams.remove("User-Agent");
            List<String> parts = new ArrayList<>();
            for (Map.Entry<String, String> e : signedParams.entrySet()) {
                parts.add(enc(e.getKey()) + "=" + enc(e.getValue()));
            }
            String empty = hex(MessageDigest.getInstance("SHA-256").digest(new byte[0]));
            String canonical = "GET\n/\n" + String.join("&", parts) + "\nhost:" + host + "\n\nhost\n" + empty;
            String toSign = "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n"
                + hex(MessageDigest.getInstance("SHA-256").digest(canonical.getBytes(StandardCharsets.UTF_8)));
            byte[] key = hmac(("AWS4" + secretKey).getBytes(StandardCharsets.UTF_8), day);
            key = hmac(key, region);
            key = hmac(key, "kafka-cluster");
            key = hmac(key, "aws4_request");
            String expected = hex(hmac(key, toSign));
            String given = q.getOrDefault("X-Amz-Signature", "");
            if (!MessageDigest.isEqual(expected.getBytes(StandardCharsets.UTF_8), given.getBytes(StandardCharsets.UTF_8))) {
                return "signature mismatch";
            }
            return null;
        } catch (Exception e) {
            return "unreadable token: " + e;
        }
    }

    private OAuthBearerToken token(String value) {
        long now = System.currentTimeMillis();
        String principal = accessKey;
        return new OAuthBearerToken() {
            public String value() {
                return value;
            }

            public Set<String> scope() {
                return Set.of();
            }

            public long lifetimeMs() {
                return now + 900_000;
            }

            public String principalName() {
                return principal;
            }

            public Long startTimeMs() {
                return now;
            }
        };
    }

    @Override
    public void close() {}
}
