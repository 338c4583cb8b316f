package io.temporal.internal.testservice;

import io.grpc.BindableService;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.temporal.api.taskqueue.v1.StickyExecutionAttributes;
import io.temporal.api.workflowservice.v1.PollWorkflowTaskQueueResponse;
import io.temporal.api.workflowservice.v1.ResetStickyTaskQueueRequest;
import io.temporal.api.workflowservice.v1.ResetStickyTaskQueueResponse;
import io.temporal.api.workflowservice.v1.WorkflowServiceGrpc;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.locks.Lock;

/**
 * ResetStickyTaskQueue for the time-skipping test server, which answers it UNIMPLEMENTED and also never moves a
 * sticky task back to the shared queue after a schedule-to-start timeout. Without either, a workflow cached by a
 * worker that has stopped waits on that worker's sticky queue forever, so no test can restart a worker.
 *
 * <p>Does what a real server's reset amounts to: the execution forgets its sticky queue (its next task goes to the
 * shared queue with the whole history), and a task already waiting on the sticky queue moves to the shared one.
 * The test server keeps this state private, so it is reached by reflection; the cache entry is rebuilt (and this
 * recompiled) for each test server version.
 */
public final class StickyQueueReset {
  private final TestWorkflowService workflowService;
  private final TestWorkflowStore workflowStore;
  private final Method getMutableState;
  private final Method getWorkflowTaskQueue;
  private final Field mutableStateLock;

  private StickyQueueReset(TestServicesStarter services) throws ReflectiveOperationException {
    this.workflowService = (TestWorkflowService) privateField(TestServicesStarter.class, "workflowService").get(services);
    this.workflowStore = (TestWorkflowStore) privateField(TestServicesStarter.class, "workflowStore").get(services);
    this.getMutableState = TestWorkflowService.class.getDeclaredMethod("getMutableState", ExecutionId.class);
    this.getMutableState.setAccessible(true);
    this.getWorkflowTaskQueue = TestWorkflowStoreImpl.class.getDeclaredMethod("getWorkflowTaskQueueQueue", TestWorkflowStore.TaskQueueId.class);
    this.getWorkflowTaskQueue.setAccessible(true);
    this.mutableStateLock = privateField(TestWorkflowMutableStateImpl.class, "lock");
  }

  /** The test server's services, with the workflow service answering ResetStickyTaskQueue. */
  public static List<BindableService> servicesWithStickyQueueReset(TestServicesStarter services) throws ReflectiveOperationException {
    StickyQueueReset reset = new StickyQueueReset(services);
    List<BindableService> result = new ArrayList<>();
    for (BindableService service : services.getServices()) {
      result.add(service == reset.workflowService ? reset::bindService : service);
    }
    return result;
  }

  private ServerServiceDefinition bindService() {
    ServerServiceDefinition original = workflowService.bindService();
    ServerServiceDefinition.Builder builder = ServerServiceDefinition.builder(original.getServiceDescriptor());
    for (ServerMethodDefinition<?, ?> method : original.getMethods()) {
      if (!method.getMethodDescriptor().getFullMethodName().equals(WorkflowServiceGrpc.getResetStickyTaskQueueMethod().getFullMethodName())) {
        builder.addMethod(method);
      }
    }
    builder.addMethod(WorkflowServiceGrpc.getResetStickyTaskQueueMethod(), ServerCalls.asyncUnaryCall(this::resetStickyTaskQueue));
    return builder.build();
  }

  private void resetStickyTaskQueue(ResetStickyTaskQueueRequest request, StreamObserver<ResetStickyTaskQueueResponse> response) {
    try {
      ExecutionId executionId = new ExecutionId(request.getNamespace(), request.getExecution());
      TestWorkflowMutableStateImpl state = (TestWorkflowMutableStateImpl) getMutableState.invoke(workflowService, executionId);
      StickyExecutionAttributes sticky;
      Lock lock = (Lock) mutableStateLock.get(state);
      lock.lock();
      try {
        sticky = state.stickyExecutionAttributes;
        state.stickyExecutionAttributes = null;
      } finally {
        lock.unlock();
      }
      if (sticky != null) {
        String sharedQueue = state.getStartRequest().getTaskQueue().getName();
        moveWaitingTask(request.getNamespace(), request.getExecution().getWorkflowId(), sticky.getWorkerTaskQueue().getName(), sharedQueue);
      }
      response.onNext(ResetStickyTaskQueueResponse.getDefaultInstance());
      response.onCompleted();
    } catch (java.lang.reflect.InvocationTargetException e) {
      response.onError(e.getCause() instanceof io.grpc.StatusRuntimeException ? e.getCause() : Status.INTERNAL.withCause(e.getCause()).withDescription(String.valueOf(e.getCause())).asRuntimeException());
    } catch (Exception e) {
      response.onError(Status.INTERNAL.withCause(e).withDescription(e.toString()).asRuntimeException());
    }
  }

  /** Moves this workflow's task, if one waits on the sticky queue, to the shared queue; others' tasks stay. */
  @SuppressWarnings("unchecked")
  private void moveWaitingTask(String namespace, String workflowId, String stickyQueue, String sharedQueue) throws Exception {
    TaskQueue<PollWorkflowTaskQueueResponse.Builder> sticky =
        (TaskQueue<PollWorkflowTaskQueueResponse.Builder>) getWorkflowTaskQueue.invoke(workflowStore, new TestWorkflowStore.TaskQueueId(namespace, stickyQueue));
    TaskQueue<PollWorkflowTaskQueueResponse.Builder> shared =
        (TaskQueue<PollWorkflowTaskQueueResponse.Builder>) getWorkflowTaskQueue.invoke(workflowStore, new TestWorkflowStore.TaskQueueId(namespace, sharedQueue));
    List<PollWorkflowTaskQueueResponse.Builder> others = new ArrayList<>();
    for (;;) {
      Future<PollWorkflowTaskQueueResponse.Builder> next = sticky.poll();
      // An empty queue parks the poll as a waiter: withdraw it (unless a task arrived in between).
      if (!next.isDone() && next.cancel(true)) break;
      PollWorkflowTaskQueueResponse.Builder task = next.get();
      if (task.getWorkflowExecution().getWorkflowId().equals(workflowId)) shared.add(task);
      else others.add(task);
    }
    for (PollWorkflowTaskQueueResponse.Builder task : others) sticky.add(task);
  }

  private static Field privateField(Class<?> owner, String name) throws NoSuchFieldException {
    Field field = owner.getDeclaredField(name);
    field.setAccessible(true);
    return field;
  }
}
