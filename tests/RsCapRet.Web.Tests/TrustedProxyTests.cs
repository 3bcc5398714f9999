using System.Net;
using System.Net.Http.Headers;
using System.Text;
using RsCapRet.Cli;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Hardening round two, item 7 follow-up: the password brake keys on the client address, so behind a reverse proxy
/// every client is the proxy. With RSCAPRET_TRUSTED_PROXIES (off by default) the client address of a request from a
/// configured proxy comes from the last X-Forwarded-For entry; from anyone else the header is ignored.
/// </summary>
public sealed class TrustedProxyTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-proxy-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public void TheSettingTakesAddressesAndNetworksAndNamesItselfForABadEntry()
    {
        Assert.Null(TrustedProxies.Parse(null));
        Assert.Null(TrustedProxies.Parse(" "));
        var proxies = TrustedProxies.Parse("10.0.0.5, 192.168.0.0/16,::1")!;
        Assert.Equal([IPAddress.Parse("10.0.0.5"), IPAddress.IPv6Loopback], proxies.Addresses);
        Assert.Equal([IPNetwork.Parse("192.168.0.0/16")], proxies.Networks);
        var e = Assert.Throws<FormatException>(() => TrustedProxies.Parse("10.0.0.5,proxy.example"));
        Assert.Contains(TrustedProxies.Variable, e.Message);
        Assert.Contains("'proxy.example'", e.Message);
    }

    [Theory]
    [InlineData(null, false)]             // the default: one brake for everyone behind the proxy
    [InlineData("127.0.0.2/32", false)]   // a proxy other than the request's peer: its header is not believed
    [InlineData("127.0.0.1", true)]
    [InlineData("127.0.0.0/8", true)]
    public async Task TheBrakeKeysOnTheForwardedClientOnlyForRequestsFromATrustedProxy(string? trusted, bool perClient)
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var limits = new HostLimits { Auth = new AuthThrottleOptions { FreeFailures = 3, FirstDelay = TimeSpan.FromMinutes(1), MaxDelay = TimeSpan.FromMinutes(1) } };
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, credentials: new DashboardCredentials("ops", "s3cret"),
            limits: limits, trustedProxies: TrustedProxies.Parse(trusted));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            async Task<HttpStatusCode> Try(string password, string? forwardedFor)
            {
                var request = new HttpRequestMessage(HttpMethod.Get, "/api/scenes");
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"ops:{password}")));
                if (forwardedFor is not null) request.Headers.Add("X-Forwarded-For", forwardedFor);
                return (await http.SendAsync(request)).StatusCode;
            }

            // A guesser behind the proxy: three wrong passwords, then it is blocked.
            for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.Unauthorized, await Try($"guess{i}", "203.0.113.7"));
            Assert.Equal(HttpStatusCode.TooManyRequests, await Try("s3cret", "203.0.113.7"));
            // Writing another address before the proxy's own entry does not get it out.
            Assert.Equal(HttpStatusCode.TooManyRequests, await Try("s3cret", "198.51.100.9, 203.0.113.7"));

            // Another client behind the same proxy: unaffected only when the proxy is trusted.
            Assert.Equal(perClient ? HttpStatusCode.OK : HttpStatusCode.TooManyRequests, await Try("s3cret", "198.51.100.9"));
            Assert.Equal(perClient ? HttpStatusCode.OK : HttpStatusCode.TooManyRequests, await Try("s3cret", null));
        }
        finally { await app.StopAsync(); }
    }
}
