namespace RsCapRet.Web;

/// <summary>Basic-auth credentials for a host reachable from other machines (RSCAPRET_DASHBOARD_USER/_PASSWORD).</summary>
public sealed record DashboardCredentials(string User, string Password)
{
    public const string UserVariable = "RSCAPRET_DASHBOARD_USER";
    public const string PasswordVariable = "RSCAPRET_DASHBOARD_PASSWORD";

    public static DashboardCredentials? FromEnvironment() =>
        WebOptions.FromEnvironment() is { DashboardUser: { } u, DashboardPassword: { } p } ? new DashboardCredentials(u, p) : null;

    public bool Accepts(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            var pair = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(authorization[6..].Trim()));
            var expected = System.Text.Encoding.UTF8.GetBytes($"{User}:{Password}");
            return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(pair), expected);
        }
        catch (FormatException) { return false; }
    }

    /// <summary>The URLs Kestrel may bind: --urls, the "urls" setting (ASPNETCORE_URLS) and every Kestrel:Endpoints:*:Url.</summary>
    public static IReadOnlyList<string> ConfiguredUrls(Microsoft.Extensions.Configuration.IConfiguration config, string cliUrls) =>
        new[] { cliUrls, config["urls"] ?? "" }
            .Concat(config.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"] ?? ""))
            .SelectMany(u => u.Split(';', ',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>Refuses addresses reachable from other machines unless basic-auth credentials are configured.</summary>
    public static void RequireForPublicBindings(IEnumerable<string> urls, DashboardCredentials? credentials)
    {
        var publicUrls = NonLoopback(string.Join(";", urls));
        if (publicUrls.Count > 0 && credentials is null)
            throw new ArgumentException($"--urls: {string.Join(",", publicUrls)} is reachable from other machines: set {UserVariable} and " +
                                        $"{PasswordVariable} (basic authentication for the dashboard and the API), or bind to 127.0.0.1");
    }

    /// <summary>The listen URLs whose host is not a loopback address.</summary>
    public static IReadOnlyList<string> NonLoopback(string urls) =>
        urls.Split(';', ',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(u =>
        {
            var host = Uri.TryCreate(u.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out var uri) ? uri.Host : u;
            return !(host == "localhost" || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip)));
        }).ToList();
}
