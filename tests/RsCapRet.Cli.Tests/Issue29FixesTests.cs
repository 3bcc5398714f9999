using Hangfire;
using Hangfire.Common;
using Microsoft.Extensions.Logging;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Web;

namespace RsCapRet.Cli.Tests;

/// <summary>Issue 29's small fixes: classify's output names, jobs that run only when asked, serve's request logging.</summary>
public class Issue29FixesTests
{
    [Theory]
    [InlineData("classes.tif", "classes.tif", "classes.geojson")]
    [InlineData("out/classes.TIFF", "out/classes.TIFF", "out/classes.geojson")]
    [InlineData("classes.geojson", "classes.tif", "classes.geojson")]
    [InlineData("classes", "classes.tif", "classes.geojson")]
    [InlineData("map.v2", "map.v2.tif", "map.v2.geojson")]
    [InlineData(null, "scene-7-classes.tif", "scene-7-classes.geojson")]
    public void ClassifyOutWritesTheNamedTifAndAGeoJsonBesideIt(string? output, string tif, string geojson) =>
        Assert.Equal((tif, geojson), ClassifyCommands.OutputPaths(output, 7));

    private sealed class RecordingManager : IRecurringJobManager
    {
        public readonly List<string> Added = [], Removed = [];
        public void AddOrUpdate(string recurringJobId, Job job, string cronExpression, RecurringJobOptions options) => Added.Add(recurringJobId);
        public void Trigger(string recurringJobId) { }
        public void RemoveIfExists(string recurringJobId) => Removed.Add(recurringJobId);
    }

    [Fact]
    public void TheRepositorysJobsRunOnlyWhenAskedAndAreNotRegisteredAsSchedules()
    {
        var root = RepositoryPaths.FindRoot();
        var defs = JobDefinition.LoadDirectory(Path.Combine(root, "jobs"));
        // No "31 February" schedule shown as DISABLED, and the sample archive is not rescanned hourly.
        Assert.All(defs, d => Assert.True(d.IsManual, $"{d.Id}: {d.Cron}"));
        var manager = new RecordingManager();
        RecurringJobDefinitions.Apply(manager, defs, root);
        Assert.Empty(manager.Added);
        Assert.Equal(defs.Select(d => d.Id).Order(), manager.Removed.Order());   // earlier registrations under those ids go
    }

    [Fact]
    public void AScheduledJobIsStillRegisteredAndANeverCronIsRefusedWithTheWayOut()
    {
        var file = Path.Combine(Path.GetTempPath(), $"rscapret-job-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, """{"id":"scan","job":"index-archive","cron":"0 * * * *","queue":"default","args":{"root":"a","glob":"*.tif","model":"m"}}""");
            var scheduled = JobDefinition.Load(file);
            Assert.False(scheduled.IsManual);
            var manager = new RecordingManager();
            RecurringJobDefinitions.Apply(manager, [scheduled], Path.GetTempPath());
            Assert.Equal(["scan"], manager.Added);

            File.WriteAllText(file, """{"id":"x","job":"evaluate","cron":"0 0 31 2 *","queue":"model","args":{}}""");
            var e = Assert.Throws<FormatException>(() => JobDefinition.Load(file));
            Assert.Contains("never fires", e.Message);
            Assert.Contains("\"manual\"", e.Message);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void ServeLogsNoLinePerRequestAtInformationByDefault()
    {
        using (var factory = LoggerFactory.Create(b => { b.SetMinimumLevel(LogLevel.Information); b.AddProvider(new NullProvider()); RequestLogging.Configure(b, null); }))
        {
            foreach (var category in RequestLogging.PerRequestCategories)
                Assert.False(factory.CreateLogger(category).IsEnabled(LogLevel.Information), category);
            Assert.False(factory.CreateLogger(RequestLogging.Category).IsEnabled(LogLevel.Debug));
            Assert.True(factory.CreateLogger(RequestLogging.Category).IsEnabled(LogLevel.Information));   // the summary
            Assert.True(factory.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Warning));
        }
        using (var factory = LoggerFactory.Create(b => { b.SetMinimumLevel(LogLevel.Information); b.AddProvider(new NullProvider()); RequestLogging.Configure(b, "debug"); }))
            Assert.True(factory.CreateLogger(RequestLogging.Category).IsEnabled(LogLevel.Debug));
        using (var factory = LoggerFactory.Create(b => { b.SetMinimumLevel(LogLevel.Information); b.AddProvider(new NullProvider()); RequestLogging.Configure(b, "info"); }))
            Assert.True(factory.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
        Assert.Throws<ArgumentException>(() => LoggerFactory.Create(b => RequestLogging.Configure(b, "loud")));
        var counts = new RequestLogging.RequestCounts();
        counts.Add(200); counts.Add(404); counts.Add(503);
        Assert.Equal((3L, 1L, 1L), counts.Take());
        Assert.Equal((0L, 0L, 0L), counts.Take());
    }

    /// <summary>A provider whose loggers take every level: what a logger factory enables is then its filters' doing.</summary>
    private sealed class NullProvider : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) { }
        public void Dispose() { }
    }
}
