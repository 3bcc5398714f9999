using RsCapRet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

public class TorchBackendTests
{
    [Fact]
    public void MatmulOnCpuMatchesHandComputedResult()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = tensor(new float[] { 7, 8, 9, 10, 11, 12 }, 3, 2);
        var c = matmul(a, b).to(TorchDevice.Resolve("cpu"));
        Assert.Equal(new long[] { 2, 2 }, c.shape);
        Assert.Equal(new float[] { 58, 64, 139, 154 }, c.data<float>().ToArray());
        Assert.Equal(DeviceType.CPU, c.device_type);
    }

    [Fact]
    public void CudaRequestOnCpuBuildIsAClearError()
    {
        if (cuda.is_available()) return; // a GPU machine runs the CUDA path instead
        var ex = Assert.Throws<InvalidOperationException>(() => TorchDevice.Resolve("cuda"));
        Assert.Contains("CUDA is not available", ex.Message);
    }
}
