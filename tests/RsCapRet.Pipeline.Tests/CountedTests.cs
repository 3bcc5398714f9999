using RsCapRet.Core;

namespace RsCapRet.Pipeline.Tests;

public class CountedTests
{
    [Theory]
    [InlineData(0, "0 tiles")]
    [InlineData(1, "1 tile")]
    [InlineData(2, "2 tiles")]
    [InlineData(-1, "-1 tiles")]
    public void TheNounIsSingularOnlyForOne(long n, string expected) => Assert.Equal(expected, Counted.Of(n, "tile"));

    [Fact]
    public void AnIrregularPluralAndAFormatAreHonoured()
    {
        Assert.Equal("1 match", Counted.Of(1, "match", "matches"));
        Assert.Equal("3 matches", Counted.Of(3, "match", "matches"));
        Assert.Equal("1,234,567 tiles", Counted.Of(1_234_567, "tile", format: "N0"));
    }
}
