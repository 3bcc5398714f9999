using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace RsCapRet.Web;

/// <summary>
/// Two checks on every request to the web host, answered with JSON: the Host header must be one this server is
/// known by (loopback names by default, so a DNS-rebinding page cannot reach a loopback-only server through a name
/// it controls), and a state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as coming from
/// another site (Origin, or Sec-Fetch-Site: cross-site) is refused, so no web page can drive the API or the
/// dashboard's forms.
/// </summary>
public static class RequestOriginChecks
{
    public const string AllowedHostsVariable = "RSCAPRET_ALLOWED_HOSTS";
    private static readonly string[] LoopbackNames = ["localhost", "127.0.0.1", "::1", "[::1]"];

    /// <summary>
    /// Loopback names plus RSCAPRET_ALLOWED_HOSTS (comma-separated host names, "*" for any). With basic auth on
    /// (a server meant for other machines) and nothing configured, any host is accepted: requests need credentials.
    /// </summary>
    public static IReadOnlySet<string>? AllowedHostsFromEnvironment(bool authenticated)
    {
        var configured = WebOptions.FromEnvironment().AllowedHosts?
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (configured.Contains("*") || (authenticated && configured.Length == 0)) return null;
        return new HashSet<string>(LoopbackNames.Concat(configured), StringComparer.OrdinalIgnoreCase);
    }

    public static IApplicationBuilder UseRequestOriginChecks(this IApplicationBuilder app, IReadOnlySet<string>? allowedHosts) =>
        app.Use(async (ctx, next) =>
        {
            var host = ctx.Request.Host.Host;
            if (allowedHosts is not null && !allowedHosts.Contains(host))
            {
                await Refuse(ctx, StatusCodes.Status400BadRequest,
                    $"Host '{ctx.Request.Host}' is not a name this server answers to (set {AllowedHostsVariable} to add one)");
                return;
            }
            if (IsStateChanging(ctx.Request.Method) && CrossSite(ctx.Request) is { } origin)
            {
                await Refuse(ctx, StatusCodes.Status403Forbidden, $"cross-site {ctx.Request.Method} from {origin} refused");
                return;
            }
            await next(ctx);
        });

    private static bool IsStateChanging(string method) =>
        HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method);

    /// <summary>The foreign origin of a cross-site request, or null when it is same-origin or not from a browser.</summary>
    private static string? CrossSite(HttpRequest req)
    {
        var origin = req.Headers.Origin.ToString();
        if (origin.Length > 0)
        {
            if (origin == "null") return "an opaque origin";
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri)) return origin;
            var sameHost = string.Equals(uri.Authority, req.Host.Value, StringComparison.OrdinalIgnoreCase);
            return sameHost ? null : origin;
        }
        return req.Headers["Sec-Fetch-Site"].ToString() == "cross-site" ? "another site" : null;
    }

    private static Task Refuse(HttpContext ctx, int status, string message)
    {
        return ApiProblem.WriteAsync(ctx, status, message);
    }
}
