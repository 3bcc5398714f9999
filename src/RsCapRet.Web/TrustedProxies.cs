using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.HttpOverrides;
using IPNetwork = System.Net.IPNetwork;

namespace RsCapRet.Web;

/// <summary>
/// Reverse proxies whose <c>X-Forwarded-For</c> header names the client (RSCAPRET_TRUSTED_PROXIES: addresses and
/// CIDR networks, comma-separated). Off by default: without it every client behind a proxy is the proxy's address,
/// and shares one password brake. With it, only a request whose peer is one of these has its client address replaced
/// by the last address of the header (the one the proxy itself added; whatever a client wrote before it is ignored);
/// other headers (<c>X-Forwarded-Host</c>, <c>-Proto</c>) are never trusted.
/// </summary>
public sealed record TrustedProxies(IReadOnlyList<IPAddress> Addresses, IReadOnlyList<IPNetwork> Networks)
{
    public const string Variable = "RSCAPRET_TRUSTED_PROXIES";

    public static TrustedProxies? FromEnvironment() => Parse(WebOptions.FromEnvironment().TrustedProxies);

    /// <summary>Null for an empty or unset value; a <see cref="FormatException"/> naming the variable for a bad entry.</summary>
    public static TrustedProxies? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var addresses = new List<IPAddress>();
        var networks = new List<IPNetwork>();
        foreach (var entry in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry.Contains('/') && IPNetwork.TryParse(entry, out var network)) networks.Add(network);
            else if (!entry.Contains('/') && IPAddress.TryParse(entry, out var address)) addresses.Add(address);
            else throw new FormatException($"{Variable}: '{entry}' is neither an IP address nor a CIDR network (e.g. 10.0.0.5, 10.0.0.0/24)");
        }
        return new TrustedProxies(addresses, networks);
    }

    /// <summary>ASP.NET Core's forwarded-headers middleware for these proxies only (its loopback defaults removed).</summary>
    public void Apply(IApplicationBuilder app)
    {
        var options = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor, ForwardLimit = 1 };
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var a in Addresses) options.KnownProxies.Add(a);
        foreach (var n in Networks) options.KnownIPNetworks.Add(n);
        app.UseForwardedHeaders(options);
    }
}
