using RsCapRet.Core;
using RsCapRet.Jobs;

namespace RsCapRet.Jobs.Tests;

public class JobDefinitionTests
{
    [Fact]
    public void RepositoryJobDefinitionsAreValid()
    {
        var defs = JobDefinition.LoadDirectory(Path.Combine(RepositoryPaths.FindRoot(), "jobs"));
        Assert.Contains(defs, d => d.Id == "index-sample-archive" && d.Job == "index-archive" && d.Queue == JobQueues.Default);
        Assert.Equal("samples/scenes", defs.Single(d => d.Id == "index-sample-archive").Arg("root"));
    }

    [Theory]
    [InlineData("{\"id\":\"x\",\"job\":\"nope\",\"cron\":\"* * * * *\",\"queue\":\"default\",\"args\":{}}", "unknown job 'nope'")]
    [InlineData("{\"id\":\"x\",\"job\":\"index-archive\",\"cron\":\"every hour\",\"queue\":\"default\",\"args\":{}}", "invalid cron")]
    [InlineData("{\"id\":\"x\",\"job\":\"index-archive\",\"cron\":\"0 * * * *\",\"queue\":\"gpu9\",\"args\":{}}", "unknown queue 'gpu9'")]
    [InlineData("{\"id\":", "not valid JSON")]
    public void BadDefinitionsNameTheFileAndTheProblem(string json, string expected)
    {
        var file = Path.Combine(Path.GetTempPath(), $"rscapret-job-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, json);
        try
        {
            var ex = Assert.Throws<FormatException>(() => JobDefinition.Load(file));
            Assert.Contains(file, ex.Message);
            Assert.Contains(expected, ex.Message);
        }
        finally { File.Delete(file); }
    }
}
