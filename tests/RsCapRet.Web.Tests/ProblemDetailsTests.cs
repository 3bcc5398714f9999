using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using RsCapRet.Cli;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Errors of the web host are problem details (application/problem+json: title, status, detail) that keep the
/// "error" member clients and the map page read; a bad parameter on any endpoint group is a 400 through the one
/// endpoint filter (BadInputFilter), never a 500 and never a stack trace.
/// </summary>
public sealed class ProblemDetailsTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-problem-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task BadParametersAre400ProblemsWithTheErrorMember()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var app = RsCapRetWebHost.Build(db.ConnectionString, "http://127.0.0.1:0", model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            // One bad parameter per endpoint group, each with a word of the message that names what is wrong.
            var requests = new (HttpMethod Method, string Url, string Names)[]
            {
                (HttpMethod.Get, "/api/search?q=river&k=abc", "k must be"),
                (HttpMethod.Get, "/api/search?q=river&localize=maybe", "localize must be"),
                (HttpMethod.Get, "/api/search/download?format=geojson&q=river&bbox=5,5,1,1", "bbox must"),
                (HttpMethod.Post, "/api/search/image?k=0", "k must be"),
                (HttpMethod.Get, "/api/heatmap?q=river&bbox=1,2,3,4&cells=2", "cells must be"),
                (HttpMethod.Get, "/api/changes?before=x", "before"),
                (HttpMethod.Get, "/api/scenes?limit=0", "limit must be"),
                (HttpMethod.Get, "/api/scenes/1/classes?labels=forest,,river", "an empty label"),
                (HttpMethod.Get, "/api/tiles/1/cells", "give q"),
                (HttpMethod.Get, "/tiles/abc/0/0.png", "zoom must be a whole number"),
                // MapTileAddress.Checked refuses with an ArgumentOutOfRangeException naming the route value z.
                (HttpMethod.Get, "/tiles/30/0/0.png", "zoom 30 is outside 0..24"),
            };
            foreach (var (method, url, names) in requests)
            {
                var response = await http.SendAsync(new HttpRequestMessage(method, url) { Content = method == HttpMethod.Post ? new ByteArrayContent([1, 2, 3]) : null });
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {url}: {(int)response.StatusCode} {text}");
                var body = ProblemOf(response, text);
                Assert.Equal("Bad Request", body.GetProperty("title").GetString());
                Assert.Equal(400, body.GetProperty("status").GetInt32());
                var error = body.GetProperty("error").GetString()!;
                Assert.Contains(names, error);
                Assert.Equal(error, body.GetProperty("detail").GetString());
                Assert.DoesNotContain("   at ", text);   // no stack trace
                Assert.DoesNotContain("Exception", text);
            }

            // Other errors keep the same shape: a missing tile (404), an unknown route (404 from the status code pages).
            foreach (var (url, error) in new[] { ("/api/tiles/999999999", "no tile 999999999"), ("/no/such/route", "not found") })
            {
                var response = await http.GetAsync(url);
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
                var body = ProblemOf(response, await response.Content.ReadAsStringAsync());
                Assert.Equal(404, body.GetProperty("status").GetInt32());
                Assert.Equal("Not Found", body.GetProperty("title").GetString());
                Assert.Equal(error, body.GetProperty("error").GetString());
            }
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public void OnlyArgumentExceptionsAboutTheRequestsParametersAreBadInput()
    {
        var request = new DefaultHttpContext().Request;
        request.RouteValues["z"] = "30";
        request.QueryString = new QueryString("?k=5");
        Assert.True(BadInputFilter.IsBadInput(new FormatException("k must be..."), request));
        Assert.True(BadInputFilter.IsBadInput(new ArgumentOutOfRangeException("z", "zoom 30 is outside 0..24"), request));
        Assert.True(BadInputFilter.IsBadInput(new ArgumentException("bad k", "k"), request));
        // A fault of the server (a parameter the request does not have, or none named) stays a 500.
        Assert.False(BadInputFilter.IsBadInput(new ArgumentOutOfRangeException("index"), request));
        Assert.False(BadInputFilter.IsBadInput(new ArgumentException("An item with the same key has already been added."), request));
        Assert.False(BadInputFilter.IsBadInput(new InvalidOperationException("k"), request));
    }

    private static JsonElement ProblemOf(HttpResponseMessage response, string text)
    {
        Assert.Equal(ApiProblem.ContentType, response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
