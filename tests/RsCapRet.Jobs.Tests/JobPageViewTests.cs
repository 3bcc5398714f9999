using System.Net;
using System.Text.RegularExpressions;
using Hangfire;
using Hangfire.Common;
using Microsoft.Extensions.DependencyInjection;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Jobs.Tests;

/// <summary>
/// Issue 29, item 4: a job's dashboard page shows its arguments in words (scene path, model folder, options) and its
/// warnings, with no raw JSON carrying <c>$type</c>; the repository's "manual" job definitions leave no disabled
/// schedule on the dashboard's recurring jobs page, even where an earlier version had registered one.
/// </summary>
public sealed class JobPageViewTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private static readonly string[] NoDateWarning = ["the scene has no acquisition date"];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-jobpage-");
    public void Dispose() => _dir.Delete(true);

    private const string Warning = "tiles at the native 5 m/px, coarser than the model's training range (0.3–1 m/px); not upsampled";

    [Fact]
    public void AnIngestJobsArgumentsAreNamedAndItsOptionsSaidInWords()
    {
        var options = new IngestJobOptions(Gsd: 0.5, Captions: false, Bands: "4,3,2", MaxNodata: 0.8);
        var job = Job.FromExpression<IngestSceneJob>(j => j.RunAsync("/archive/<b>x</b>.tif", "/models/m", options, null, CancellationToken.None));
        var arguments = JobPageView.Arguments(job);
        Assert.Equal(["scene path", "model folder", "options"], arguments.Select(a => a.Name));   // no context, no cancellation token
        Assert.Equal("/archive/<b>x</b>.tif", arguments[0].Value);
        Assert.Equal("bands 4,3,2; GSD 0.5 m/px; at most 80 % nodata per tile; no captions", arguments[2].Value);

        var html = JobPageView.Html(arguments, [Warning, "<script>alert(1)</script>"]);
        Assert.Contains("<th style=\"width: 20%\">scene path</th><td style=\"word-break: break-all\">/archive/&lt;b&gt;x&lt;/b&gt;.tif</td>", html);
        Assert.Contains("<h3>Warnings</h3>", html);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("<b>", html);

        Assert.Equal("defaults (the model's tiling, captions on)", JobPageView.Describe(new IngestJobOptions()));
        Assert.Equal("STAC item /stac/items/a.json; scenes outside the model's resolution range skipped",
            JobPageView.Describe(new IngestJobOptions(StacItem: "/stac/items/a.json", SkipOutOfRange: true)));
        var scan = JobPageView.Arguments(Job.FromExpression<IndexArchiveJob>(j => j.RunAsync("/archive", "*.tif", "/models/m", null, null, CancellationToken.None)));
        Assert.Equal([("archive", "/archive"), ("file pattern", "*.tif"), ("model folder", "/models/m"), ("options", "(none: the defaults)")], scan);
    }

    [Fact]
    public async Task TheJobPageShowsArgumentsAndWarningsOnceAndNoTypeNames()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        // A second host configured in the same process (as the demo and other tests do) must not repeat the sections.
        var other = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{LoopbackPorts.Free()}", model, jobs: WebHostJobs.Dashboard);
        other.Services.GetRequiredService<IGlobalConfiguration>();
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var storage = app.Services.GetRequiredService<JobStorage>();
            var client = new BackgroundJobClient(storage);
            var scene = Path.Combine(_dir.FullName, "naip <5 m>.tif");
            // Scheduled a year ahead and deleted below, so no worker of another test ever runs it.
            var options = new IngestJobOptions(Gsd: 5, SkipOutOfRange: true);
            var jobId = client.Schedule<IngestSceneJob>(j => j.RunAsync(scene, model, options, null, CancellationToken.None), TimeSpan.FromDays(365));
            // What a worker stores for the job: its progress and its report (with the ingest's warning), and what
            // `rscapret ingest` stores for a warning it printed.
            var result = new IngestResult(scene, 7, IngestOutcome.Ingested, 20, 0, TimeSpan.FromSeconds(1.5), Warning: Warning);
            using (var connection = storage.GetConnection())
            {
                JobPageView.SetParameter(connection, jobId, IngestSceneJob.ReportParameter, new IngestJobReport(result, ["20 tiles stored"]));
                JobPageView.SetParameter(connection, jobId, JobProgress.Parameter, new ProgressValue(20, 20, "tiles", "20 stored", DateTime.UtcNow));
                JobPageView.SetParameter(connection, jobId, JobPageView.WarningsParameter, NoDateWarning);
                // The stored report reads back as it was written (the demo prints it from there).
                var back = IngestSceneJob.ReadReport(connection, jobId)!;
                Assert.Equal((result.Path, result.SceneId, result.Outcome, result.Tiles, result.Warning, result.Elapsed), (back.Result.Path, back.Result.SceneId, back.Result.Outcome, back.Result.Tiles, back.Result.Warning, back.Result.Elapsed));
                Assert.Equal(20, JobProgress.Read(connection, jobId)!.Done);
            }

            var page = await http.GetStringAsync($"/hangfire/jobs/details/{jobId}");
            Assert.Single(Regex.Matches(page, "rscapret-job\""));
            Assert.Single(Regex.Matches(page, "rscapret-progress\""));
            Assert.Contains($"<th style=\"width: 20%\">scene path</th><td style=\"word-break: break-all\">{WebUtility.HtmlEncode(scene)}</td>", page);
            Assert.Contains("GSD 5 m/px; scenes outside the model&#39;s resolution range skipped", page);
            Assert.Contains("<h3>Warnings</h3>", page);
            Assert.Contains(WebUtility.HtmlEncode(Warning), page);
            Assert.Contains("the scene has no acquisition date", page);
            Assert.DoesNotContain("$type", page);

            // As a browser shows it: no script error or policy violation; the screenshot is kept (job-page-1.png).
            var text = await BrowserTextAsync(baseUrl, "job-page", $"/hangfire/jobs/details/{jobId}");
            Assert.Contains("scene path", text[0]);
            Assert.Contains("GSD 5 m/px", text[0]);
            Assert.DoesNotContain("$type", text[0]);
            client.Delete(jobId);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task TheWarningRscapretIngestPrintsIsOnItsJobPage()
    {
        // 224 px of the NAIP sample (5 m/px): far coarser than the shipped model's range, which ingest warns about.
        using var naip = RsCapRet.Raster.RasterDataset.Open(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif"));
        var bands = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[224 * 224];
            naip.Read(b, new PixelWindow(300, 200, 224, 224), buf.AsSpan(), 224, 224);
            return buf;
        }).ToArray();
        var scene = Path.Combine(_dir.FullName, "naip-crop.tif");
        RsCapRet.Raster.RasterWriter.WriteGeoTiff(scene, 224, 224, bands, [485899 + 5 * 300, 5, 0, 5209246 - 5 * 200, 0, -5], 26914);
        var ingest = await CliRunner.Run("ingest", scene, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);
        var printed = Regex.Match(ingest.Err, @"warning: [^\n]*?\.tif: (.+)").Groups[1].Value.Trim();
        Assert.NotEmpty(printed);

        var monitor = HangfireSetup.CreateStorage(db.ConnectionString).GetMonitoringApi();
        var recorded = monitor.SucceededJobs(0, 10).Single(j => j.Value.Job?.Args[0] as string == scene);
        Assert.Equal([printed], JobPageView.Warnings(monitor.JobDetails(recorded.Key).Properties));
    }

    /// <summary>Each page's visible text in headless Chromium (tests/web/dashboard-pages.mjs); screenshots beside the test binary.</summary>
    private static async Task<List<string>> BrowserTextAsync(string baseUrl, string name, params string[] paths)
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var (code, stdout, errors) = await TestProcess.RunAsync("node",
            [Path.Combine(root, "tests", "web", "dashboard-pages.mjs"), baseUrl, Path.Combine(AppContext.BaseDirectory, name), .. paths], root, TimeSpan.FromSeconds(120));
        Assert.True(code == 0, $"tests/web/dashboard-pages.mjs failed (exit {code}):\n{errors}\n{stdout}");
        using var facts = System.Text.Json.JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        return facts.RootElement.GetProperty("pages").EnumerateArray().Select(p => p.GetProperty("text").GetString()!).ToList();
    }

    [Fact]
    public async Task ManualDefinitionsLeaveNoDisabledScheduleOnTheRecurringJobsPage()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var manager = app.Services.GetRequiredService<IRecurringJobManager>();
            // What an earlier version registered: the sample archive's scan on a schedule that never fires.
            manager.AddOrUpdate<IndexArchiveJob>("index-sample-archive", JobQueues.Default,
                j => j.RunAsync("/archive", "*.tif", model, null, CancellationToken.None), Cron.Never(), new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc });
            Assert.Contains("index-sample-archive", await http.GetStringAsync("/hangfire/recurring"));

            var root = RepositoryPaths.FindRoot();
            var definitions = JobDefinition.LoadDirectory(Path.Combine(root, "jobs"));
            RecurringJobDefinitions.Apply(manager, definitions, root);
            JobDefinitionsPage.Show(definitions, Path.Combine(root, "jobs"));   // as `serve` does
            var recurring = await http.GetStringAsync("/hangfire/recurring");
            Assert.DoesNotContain("index-sample-archive", recurring);
            Assert.DoesNotContain("0 0 31 2 *", recurring);
            Assert.Contains("Job definitions", recurring);   // the menu leads to where the manual jobs are explained

            // The definitions page: each manual job, why it is not among the recurring jobs, and how to run it.
            var page = await http.GetStringAsync("/hangfire/definitions");
            Assert.Contains("is not registered as a recurring job", page);
            Assert.Equal(definitions.Count, Regex.Count(page, "manual: runs only when asked"));
            Assert.Contains("<code>rscapret index-archive samples/scenes --pattern &#39;*.tif&#39; --model models/default</code>", page);
            Assert.Contains("<code>rscapret evaluate --model models/default --dataset ../shared/data/ucm-captions --split val --out .data/eval/default-ucm-val</code>", page);
            var text = await BrowserTextAsync(baseUrl, "job-definitions", "/hangfire/recurring", "/hangfire/definitions");
            Assert.Contains("Job definitions", text[0]);
            Assert.Contains("runs only when asked", text[1]);
        }
        finally { await app.StopAsync(); }
    }
}
